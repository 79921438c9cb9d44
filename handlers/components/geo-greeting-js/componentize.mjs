// node componentize.mjs <app.js> <wit dir> <out.wasm> [world]: componentize-js's API, as its CLI lacks
// --world-name here. The world defaults to "geo" (geo-greeting-js's).
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile } from "node:fs/promises";

const [sourcePath, witPath, out, worldName = "geo"] = process.argv.slice(2);
const { component } = await componentize({ sourcePath, witPath, worldName });
await writeFile(out, component);

// node componentize.mjs <app.js> <wit dir> <out.wasm>: componentize-js's API, as its CLI lacks --world-name here.
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile } from "node:fs/promises";

const [sourcePath, witPath, out] = process.argv.slice(2);
const { component } = await componentize({ sourcePath, witPath, worldName: "geo" });
await writeFile(out, component);

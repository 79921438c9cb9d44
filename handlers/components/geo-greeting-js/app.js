// The guide's geo greeting as a JavaScript HTTP component (componentize-js, StarlingMonkey):
// a fetch-event handler, which the engine attaches to wasi:http/incoming-handler#handle.

const GREETINGS = { KR: "안녕하세요", JP: "こんにちは" };

addEventListener("fetch", (event) => {
  const request = event.request;
  const country = (request.headers.get("cf-ipcountry") || "").toUpperCase();
  const url = new URL(request.url);
  const greeting = GREETINGS[country] || "Hello";
  event.respondWith(
    new Response(`${greeting} from ${request.method} ${url.pathname}${url.search}\n`, {
      headers: { "content-type": "text/plain; charset=utf-8", "x-country": country || "unknown" },
    }),
  );
});

// geo-weather as a JavaScript HTTP component (componentize-js, StarlingMonkey): the twin of
// handlers/geo-weather (WAGI, C). On a request it reads cf-ipcountry and fetches that
// country's weather from the app's own origin route, http://self/shop/weather?country=XX
// (granted by the manifest as "http://self"); the host sends it through the edge node's
// cache. `?url=URL` fetches URL instead (`&body=TEXT` POSTs TEXT to it): the host's tests use
// it for refusals, redirects and request bodies.
// The fetch is WASI 0.2's wasi:http/outgoing-handler, which StarlingMonkey's fetch() calls.

function countryCode(value) {
  const code = (value || "").toUpperCase();
  return /^[A-Z]{2}$/.test(code) ? code : "XX";
}

function plain(value, fallback) {
  return value && /^[A-Za-z0-9-]+$/.test(value) ? value : fallback;
}

function json(status, value, headers = {}) {
  return new Response(JSON.stringify(value) + "\n", {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

async function handle(request) {
  const country = countryCode(request.headers.get("cf-ipcountry"));
  const region = plain(request.headers.get("x-edge-region"), "unknown");
  const params = new URL(request.url).searchParams;
  const asked = params.get("url");
  const target = asked || `http://self/shop/weather?country=${country}`;
  const init = { headers: { accept: "application/json" } };
  if (asked && params.has("body")) {
    Object.assign(init, { method: "POST", body: params.get("body") });
  }
  let upstream;
  let body;
  try {
    upstream = await fetch(target, init);
    body = await upstream.text();
  } catch (error) {
    return json(502, {
      error: "the weather service cannot be reached",
      url: target,
      message: String(error && error.message ? error.message : error),
    });
  }
  const cache = upstream.headers.get("x-cache") || "NONE";
  if (asked) {
    return json(200, { country, url: target, upstream_status: upstream.status, upstream_cache: cache, body });
  }
  if (upstream.status !== 200) {
    return json(502, { error: `the weather service answered ${upstream.status}`, upstream_status: upstream.status });
  }
  let weather;
  try {
    weather = JSON.parse(body);
  } catch {
    return json(502, { error: "the weather answer is not JSON", upstream_status: upstream.status });
  }
  return json(
    200,
    { country, region, upstream_status: upstream.status, upstream_cache: cache, weather },
    { vary: "cf-ipcountry", "x-upstream-cache": cache },
  );
}

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

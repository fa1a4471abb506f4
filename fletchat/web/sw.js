// Flet Chat's service worker (written by fletchat.webbuild): keeps the static site for offline use.
// A second visit starts from this cache, also with the host gone. Files are kept per build
// version; a new build (a new sw.js) keeps its own files and drops the old ones.
const VERSION = "__VERSION__";
const CACHE = "fletchat-" + VERSION;
const SCOPE = new URL("./", self.registration.scope);
const PRECACHE = __PRECACHE__;

async function keep(cache, url) {
  try {
    if (!(await cache.match(url))) {
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.ok) await cache.put(url, response);
    }
  } catch (error) {
    console.warn("Flet Chat offline copy: could not keep", url, String(error));
  }
}

async function keepAll(urls) {
  const cache = await caches.open(CACHE);
  await Promise.all(urls.map((u) => keep(cache, new URL(u, SCOPE).href)));
}

self.addEventListener("install", (event) => {
  self.skipWaiting();
  event.waitUntil(keepAll(PRECACHE));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("fletchat-") && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

// The page says which files it loaded (e.g. the CanvasKit variant this browser uses).
self.addEventListener("message", (event) => {
  const urls = (event.data && event.data.keep) || [];
  const sameSite = urls.filter((u) => u.startsWith(SCOPE.href));
  const done = keepAll([...PRECACHE, ...sameSite.map((u) => u.split("#")[0])]);
  event.waitUntil(done.then(() => event.ports[0] && event.ports[0].postMessage("kept")));
});

async function respond(request) {
  const cache = await caches.open(CACHE);
  const key = request.mode === "navigate" ? SCOPE.href : request.url;
  const hit = await cache.match(key, { ignoreSearch: request.mode === "navigate" });
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok && response.type === "basic" && response.status === 200) {
    cache.put(key, response.clone());
  }
  return response;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || request.headers.has("range")) return;
  if (!request.url.startsWith(SCOPE.href)) return; // the relay, the Flet app at "/", other sites
  event.respondWith(respond(request));
});

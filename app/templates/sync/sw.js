// Walkthrough service worker. Generated per deployment: the cache name changes with every
// build, so an update installs a fresh cache and removes the old ones. It never touches
// POST requests or the API: queued observations live in IndexedDB, not here.
// Two caches: CACHE holds what names nobody (static files, capture shells) and PAGES every
// page of the person signed in, which offline.js removes when they sign out or
// someone else signs in on this device (a shared tablet).
const CACHE = {{ cache_name|tojson }};
const PAGES = "walkthrough-pages";
const PRECACHE = {{ precache|tojson }};
const PERSONAL = {{ personal|tojson }};

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await Promise.all(PRECACHE.map(async (url) => {
      const response = await fetch(url, { credentials: "same-origin", cache: "reload" });
      if (response.ok && !response.redirected) await cache.put(url, response);
    }));
    // Pages that depend on the signed-in person (the start page with their roster): kept
    // when the person is signed in, skipped otherwise.
    const pages = await caches.open(PAGES);
    await Promise.all(PERSONAL.map(async (url) => {
      try {
        const response = await fetch(url, { credentials: "same-origin", cache: "reload" });
        if (response.ok && !response.redirected) await pages.put(url, response);
      } catch (error) { /* offline during install: the page is cached on its next visit */ }
    }));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names.filter((n) => n.startsWith("walkthrough-") && n !== CACHE && n !== PAGES).map((n) => caches.delete(n)));
    await self.clients.claim();
  })());
});

function isCacheableNavigation(url) {
  return !url.pathname.startsWith("/api/") && url.pathname !== "/logout" && url.pathname !== "/login" &&
    // A teacher's feedback link is its own key, and the page that shows a new link shows it
    // once: neither is ever kept on a device.
    !url.pathname.startsWith("/f/") && !/^\/observations\/[^/]+\/shared$/.test(url.pathname);
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return; // never intercept POST (or any write)
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname === "/sw.js") return;

  if (url.pathname.startsWith("/static/") || url.pathname.startsWith("/capture/")) {
    // Versioned by the cache name; capture pages of published rubric versions never change.
    event.respondWith((async () => {
      const cache = await caches.open(CACHE);
      const hit = await cache.match(request, { ignoreSearch: url.pathname.startsWith("/capture/") });
      if (hit) return hit;
      const response = await fetch(request);
      if (response.ok && !response.redirected) cache.put(request, response.clone());
      return response;
    })());
    return;
  }

  if (request.mode === "navigate" && isCacheableNavigation(url)) {
    // Network first, so people see fresh pages; the last good copy when offline.
    event.respondWith((async () => {
      try {
        const response = await fetch(request);
        if (response.ok && !response.redirected) {
          const copy = response.clone();
          event.waitUntil(caches.open(PAGES).then((pages) => pages.put(url.pathname + url.search, copy)));
        }
        return response;
      } catch (error) {
        const pages = await caches.open(PAGES);
        const hit = (await pages.match(url.pathname + url.search)) || (await pages.match(url.pathname));
        if (hit) return hit;
        const outbox = await pages.match("/outbox");
        if (outbox) return outbox;
        throw error;
      }
    })());
  }
});

// Background Sync where the browser has it (iPadOS Safari does not: the pages flush on
// load, on "online", on a timer and with "Sync now" as well).
self.addEventListener("sync", (event) => {
  if (event.tag !== "walkthrough-outbox") return;
  event.waitUntil((async () => {
    const pages = await self.clients.matchAll({ includeUncontrolled: true });
    pages.forEach((page) => page.postMessage({ type: "flush" }));
  })());
});

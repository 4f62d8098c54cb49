// Runs the service worker the server generated (path in argv[2]) in Node with an in-memory
// Cache Storage and a network that can be switched off, dispatches its events as a browser
// would, and prints what it did as JSON for tests/sync/test_offline_pages.py to check.
import { readFileSync } from "node:fs";
import vm from "node:vm";

const origin = "https://walkthrough.test";
const stores = new Map(); // cache name -> Map(url -> body)
let online = true;
const fetched = [];

function keyOf(request, ignoreSearch) {
  const url = new URL(typeof request === "string" ? request : request.url, origin);
  return ignoreSearch ? url.pathname : url.pathname + url.search;
}

const caches = {
  async open(name) {
    if (!stores.has(name)) stores.set(name, new Map());
    const entries = stores.get(name);
    return {
      async put(request, response) { entries.set(keyOf(request, false), await response.text()); },
      async match(request, options = {}) {
        const wanted = keyOf(request, options.ignoreSearch);
        for (const [key, body] of entries) {
          if ((options.ignoreSearch ? key.split("?")[0] : key) === wanted) return new Response(body);
        }
        return undefined;
      },
    };
  },
  async keys() { return [...stores.keys()]; },
  async delete(name) { return stores.delete(name); },
};

async function network(request) {
  const url = new URL(typeof request === "string" ? request : request.url, origin);
  fetched.push(url.pathname + url.search);
  if (!online) throw new TypeError("Failed to fetch (offline)");
  return new Response(`network ${url.pathname}`, { status: 200 });
}

const listeners = {};
const self = {
  location: new URL(origin + "/sw.js"),
  addEventListener: (type, handler) => { listeners[type] = handler; },
  skipWaiting: async () => {},
  clients: { claim: async () => {}, matchAll: async () => [] },
};
vm.runInContext(readFileSync(process.argv[2], "utf8"), vm.createContext({ self, caches, fetch: network, URL, Response, console }));

async function dispatch(type, fields = {}) {
  const waits = [];
  let responded = null;
  listeners[type]({ ...fields, waitUntil: (p) => waits.push(p), respondWith: (r) => { responded = r; } });
  const body = responded ? await (await responded).text() : null;
  await Promise.all(waits);
  return body;
}
const request = (path, method = "GET", mode = "cors") => ({ url: origin + path, method, mode });

const result = {};
stores.set("walkthrough-old-build", new Map());
await dispatch("install");
result.caches_after_install = [...stores.keys()].sort();
const cacheName = [...stores.keys()].find((n) => n !== "walkthrough-pages" && n !== "walkthrough-old-build");
result.cache_name = cacheName;
result.precached = [...stores.get(cacheName).keys()].sort();
await dispatch("activate");
result.caches_after_activate = [...stores.keys()].sort();

online = false;
fetched.length = 0;
result.offline_capture = await dispatch("fetch", { request: request("/capture/discourse-walkthrough/1?teacher=3") });
result.offline_static = await dispatch("fetch", { request: request("/static/offline.js") });
result.post_answered = await dispatch("fetch", { request: request("/api/sync/push", "POST") });
result.form_post_answered = await dispatch("fetch", { request: request("/observations/new", "POST", "navigate") });
result.api_get_answered = await dispatch("fetch", { request: request("/api/sync/pull") });
result.offline_fetches = [...fetched];

online = true;
await dispatch("fetch", { request: request("/observations", "GET", "navigate") });
online = false;
result.offline_page = await dispatch("fetch", { request: request("/observations", "GET", "navigate") });
result.offline_unknown_page = await dispatch("fetch", { request: request("/dashboard", "GET", "navigate") }).catch((e) => `error: ${e.message}`);
console.log(JSON.stringify(result));

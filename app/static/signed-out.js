// The sign-in page: nobody is signed in in this browser now, so the pages that name people
// (the service worker's "walkthrough-pages" cache) go, and the device forgets who was last
// signed in ("walkthrough-last-account" stays: the next person's arrival removes what that
// account left on the device). Unsent observations stay in IndexedDB for their authors.
(function () {
  "use strict";
  try { localStorage.removeItem("walkthrough-account"); } catch (e) { /* private mode */ }
  if ("caches" in window) caches.delete("walkthrough-pages").catch(function () {});
})();

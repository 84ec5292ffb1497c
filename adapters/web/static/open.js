// Trade the link's token (in the fragment, never sent to a server) for a session cookie, then go
// to the workspace page with the token gone from the address bar and the history.
"use strict";
(function () {
  const token = decodeURIComponent(location.hash.slice(1));
  history.replaceState(null, "", "/w/open");
  if (!token) { location.replace("/w/denied"); return; }
  fetch("/w/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: token }),
  }).then(function (response) {
    if (!response.ok) { throw new Error("denied"); }
    return response.json();
  }).then(function (body) {
    location.replace(body.next);
  }).catch(function () {
    location.replace("/w/denied");
  });
})();

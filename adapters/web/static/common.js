// Helpers the pages share. Every value from the server is inserted as text, never as markup.
"use strict";
window.dt = {
  el: function (tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  },
  fileUrl: function (name) {
    return "files/" + name.split("/").map(encodeURIComponent).join("/");
  },
  getJson: function (url) {
    return fetch(url, { credentials: "same-origin" }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        return { status: response.status, body: body };
      });
    });
  },
  number: function (n) { return Number(n).toLocaleString("en-US"); },
};

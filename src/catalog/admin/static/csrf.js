// Sends the session's CSRF token (the page's <meta name="csrf-token">) with every
// state-changing admin request: catalog.admin.middleware.CSRFMiddleware refuses any without.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (!meta) {
    return;
  }
  var token = meta.getAttribute("content");
  var FIELD = "csrf_token";
  var HEADER = "X-CSRF-Token";
  var SAFE = /^(GET|HEAD|OPTIONS)$/i;

  function sameOrigin(url) {
    return new URL(url, window.location.href).origin === window.location.origin;
  }

  // Forms: a hidden field, added once, at load and again at submit (for forms made later).
  function arm(form) {
    if (SAFE.test(form.getAttribute("method") || "GET") || form.elements.namedItem(FIELD)) {
      return;
    }
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = FIELD;
    input.value = token;
    form.appendChild(input);
  }
  document.querySelectorAll("form").forEach(arm);
  document.addEventListener("submit", function (event) {
    if (event.target instanceof HTMLFormElement) {
      arm(event.target);
    }
  }, true);

  // sqladmin's scripts: jQuery for deletes, fetch elsewhere.
  if (window.jQuery) {
    window.jQuery.ajaxPrefilter(function (options, original, xhr) {
      if (!SAFE.test(options.type || "GET") && sameOrigin(options.url)) {
        xhr.setRequestHeader(HEADER, token);
      }
    });
  }
  var nativeFetch = window.fetch;
  window.fetch = function (input, init) {
    var request = new Request(input, init);
    if (!SAFE.test(request.method) && sameOrigin(request.url)) {
      request.headers.set(HEADER, token);
    }
    return nativeFetch.call(window, request);
  };

  // Logout is a GET link in sqladmin's pages: it carries the token in its query string.
  document.querySelectorAll("a[href]").forEach(function (link) {
    var url = new URL(link.href, window.location.href);
    if (url.origin === window.location.origin && /\/logout$/.test(url.pathname)) {
      url.searchParams.set(FIELD, token);
      link.href = url.toString();
    }
  });
})();

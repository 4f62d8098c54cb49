// Starts Swagger UI on /api/docs (a file, not inline code: the app's CSP allows no inline script).
(function () {
  "use strict";
  var target = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({
    url: target.dataset.openapiUrl,
    domNode: target,
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
})();

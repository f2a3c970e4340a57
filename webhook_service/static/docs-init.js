// Starts Swagger UI on /docs (webhook_service/api_docs.py). A file of ours, not an inline script,
// so the docs page keeps a content policy that allows scripts from this site only.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // Swagger UI would send the schema to validator.swagger.io for its badge: nothing leaves this site.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();

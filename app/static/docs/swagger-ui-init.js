// Starts Swagger UI from the settings the page carries (app/templates/swagger_ui.html):
// a file of its own, so /docs needs no inline script in its Content-Security-Policy.
window.addEventListener("load", function () {
  var container = document.getElementById("swagger-ui-container");
  var config = JSON.parse(container.dataset.config || "{}");
  config.url = container.dataset.specUrl;
  config.dom_id = "#swagger-ui-container";
  window.ui = SwaggerUIBundle(config);
});

// OAuth 2.0 Form Post Response Mode: deliver the authorization response at once.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("response");
  if (form) { form.submit(); }
});

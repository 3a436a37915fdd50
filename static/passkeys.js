// Passkey sign-in, sign-up and registration: the browser half of the WebAuthn
// ceremonies whose server half is /passkeys/* and /account/passkeys/*.
// The server speaks JSON with binary fields as base64url; the WebAuthn API wants
// ArrayBuffers, so this file converts both ways and does nothing else clever.
(function () {
  "use strict";

  function fromB64url(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function csrfToken() {
    var field = document.querySelector('input[name="csrf"]');
    return field ? field.value : "";
  }

  function ServerError(code, message) {
    this.code = code;
    this.message = message;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrfToken() },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          throw new ServerError(data.error || "server_error",
            data.error_description || "The server could not complete the request.");
        }
        return data;
      });
    });
  }

  function creationOptions(json) {
    var pk = json.publicKey;
    pk.challenge = fromB64url(pk.challenge);
    pk.user.id = fromB64url(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = fromB64url(c.id); });
    return pk;
  }

  function requestOptions(json) {
    var pk = json.publicKey;
    pk.challenge = fromB64url(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = fromB64url(c.id); });
    return pk;
  }

  function registration(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toB64url(r.attestationObject),
        clientDataJSON: toB64url(r.clientDataJSON),
        transports: typeof r.getTransports === "function" ? r.getTransports() : undefined
      },
      extensions: {}
    };
  }

  function assertion(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toB64url(r.authenticatorData),
        clientDataJSON: toB64url(r.clientDataJSON),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : null
      },
      extensions: {}
    };
  }

  // What a person should read when the browser or the server says no.
  function explain(error) {
    if (error instanceof ServerError) { return error.message; }
    switch (error && error.name) {
      case "NotAllowedError":
        return "The passkey request was cancelled or timed out. Try again when you are ready.";
      case "InvalidStateError":
        return "This device already holds a passkey for this account.";
      case "SecurityError":
        return "This site's address cannot use passkeys.";
      case "AbortError":
        return "";
      default:
        return "Your browser could not use a passkey" + (error && error.name ? " (" + error.name + ")." : ".");
    }
  }

  function setUp(box, run) {
    var button = box.querySelector("button");
    var alert = box.querySelector(".alert");
    box.hidden = false;
    function show(message) {
      alert.textContent = message;
      alert.hidden = !message;
    }
    if (!window.PublicKeyCredential || !navigator.credentials) {
      button.disabled = true;
      show("This browser cannot use passkeys. Use your password, or another browser.");
      return;
    }
    button.addEventListener("click", function () {
      show("");
      button.disabled = true;
      run().catch(function (error) {
        show(explain(error));
      }).then(function () { button.disabled = false; });
    });
  }

  function go(data) { window.location.assign(data.redirect || "/account"); }

  var signIn = document.getElementById("passkey-sign-in");
  if (signIn) {
    var returnTo = signIn.getAttribute("data-return-to") || null;
    var autofill = null;
    var signInWith = function (mediation, signal) {
      return post("/passkeys/sign-in/start").then(function (options) {
        var request = { publicKey: requestOptions(options) };
        if (mediation) { request.mediation = mediation; }
        if (signal) { request.signal = signal; }
        return navigator.credentials.get(request);
      }).then(function (cred) {
        return post("/passkeys/sign-in/finish", { credential: assertion(cred), return_to: returnTo });
      }).then(go);
    };
    setUp(signIn, function () {
      // One WebAuthn request at a time: the button replaces the autofill offer.
      if (autofill) { autofill.abort(); autofill = null; }
      return signInWith(null, null);
    });
    // Passkeys offered in the Email field's autofill, where the browser can.
    if (window.PublicKeyCredential && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (!available) { return; }
        autofill = new AbortController();
        signInWith("conditional", autofill.signal).catch(function (error) {
          var message = explain(error);
          var alert = signIn.querySelector(".alert");
          if (message && error && error.name !== "NotAllowedError") {
            alert.textContent = message;
            alert.hidden = false;
          }
        });
      });
    }
  }

  var signUp = document.getElementById("passkey-sign-up");
  if (signUp) {
    var signUpReturnTo = signUp.getAttribute("data-return-to") || null;
    setUp(signUp, function () {
      var email = document.getElementById("email");
      if (!email || !email.value.trim()) {
        if (email) { email.focus(); }
        return Promise.reject(new ServerError("invalid_request", "Enter your email first."));
      }
      return post("/passkeys/sign-up/start", { email: email.value }).then(function (options) {
        return navigator.credentials.create({ publicKey: creationOptions(options) });
      }).then(function (cred) {
        return post("/passkeys/sign-up/finish", { credential: registration(cred), return_to: signUpReturnTo });
      }).then(go);
    });
  }

  var add = document.getElementById("passkey-add");
  if (add) {
    setUp(add, function () {
      return post("/account/passkeys/start").then(function (options) {
        return navigator.credentials.create({ publicKey: creationOptions(options) });
      }).then(function (cred) {
        return post("/account/passkeys/finish", { credential: registration(cred) });
      }).then(go, function (error) {
        if (error instanceof ServerError && error.code === "login_required") {
          window.location.assign("/login?prompt=login&return_to=%2Faccount");
          return;
        }
        throw error;
      });
    });
  }
})();

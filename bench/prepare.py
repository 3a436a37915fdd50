#!/usr/bin/env python3
"""Makes what bench/run.sh's wrk scripts replay: a signed-in browser's cookie,
a sign-in form, access tokens and one refresh token per connection.

    prepare.py BASE CLIENT_ID CLIENT_SECRET EMAIL PASSWORD REDIRECT_URI N_REFRESH OUT_DIR

Standard library only. Writes OUT_DIR/prepared.json and OUT_DIR/refresh_tokens.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import sys
import urllib.parse

base, client_id, secret, email, password, redirect_uri, n_refresh, out = sys.argv[1:9]
host = urllib.parse.urlsplit(base)
conn = http.client.HTTPConnection(host.hostname, host.port)
jar = {}
basic = "Basic " + base64.b64encode(
    f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(secret, safe='')}".encode()
).decode()


def cookie_header():
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def call(method, path, body=None, headers=None):
    headers = dict(headers or {})
    if jar:
        headers["Cookie"] = cookie_header()
    if body is not None:
        body = urllib.parse.urlencode(body)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    answer = conn.getresponse()
    data = answer.read().decode()
    for name, value in answer.getheaders():
        if name.lower() == "set-cookie":
            k, _, v = value.split(";", 1)[0].partition("=")
            jar[k] = v
    return answer.status, answer.getheader("Location"), data


def fail(what):
    sys.exit(f"prepare: {what}")


# The sign-in form: a CSRF cookie and the matching field, replayable as is.
status, _, page = call("GET", "/login?prompt=login")
csrf = re.search(r'name="csrf" value="([^"]+)"', page)
if status != 200 or not csrf:
    fail(f"/login answered {status} without a CSRF field")
login_cookie = cookie_header()
login_body = urllib.parse.urlencode({"csrf": csrf.group(1), "email": email, "password": password})
status, _, _ = call("POST", "/login", {"csrf": csrf.group(1), "email": email, "password": password})
if status != 303:
    fail(f"sign-in answered {status}")
session_cookie = cookie_header()

verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def code_flow(scope):
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": scope, "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
    })
    status, location, _ = call("GET", f"/authorize?{query}")
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(location or "").query).get("code")
    if not code:
        fail(f"authorize answered {status} -> {location}")
    status, _, body = call("POST", "/token", {
        "grant_type": "authorization_code", "code": code[0], "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }, {"Authorization": basic})
    if status != 200:
        fail(f"code exchange answered {status}: {body}")
    return json.loads(body)


user_token = code_flow("openid email")["access_token"]
refresh = [code_flow("openid offline_access")["refresh_token"] for _ in range(int(n_refresh))]
status, _, body = call("POST", "/token", {"grant_type": "client_credentials"}, {"Authorization": basic})
if status != 200:
    fail(f"client_credentials answered {status}: {body}")
service_token = json.loads(body)["access_token"]
status, _, body = call("POST", "/introspect", {"token": service_token}, {"Authorization": basic})
if status != 200 or not json.loads(body).get("active"):
    fail(f"introspection of a fresh token answered {status}: {body}")

with open(os.path.join(out, "refresh_tokens"), "w") as f:
    f.write("\n".join(refresh) + "\n")
with open(os.path.join(out, "prepared.json"), "w") as f:
    json.dump({
        "basic": basic, "login_cookie": login_cookie, "login_body": login_body,
        "session_cookie": session_cookie, "user_token": user_token, "service_token": service_token,
        "verifier": verifier, "challenge": challenge,
    }, f)

-- The authorization code flow with PKCE as a signed-in person's browser and a
-- client's back end run it: GET /authorize with the session cookie (a
-- first-party client: straight back with a code), then POST /token with that
-- code. A code is exchanged once; `ops` counts finished flows.
dofile("bench/wrk/report.lua")
local cookie = os.getenv("WRK_COOKIE")
local auth = os.getenv("WRK_AUTHORIZATION")
local client = os.getenv("WRK_CLIENT_ID")
local redirect = os.getenv("WRK_REDIRECT_URI")
local verifier = os.getenv("WRK_VERIFIER")
local challenge = os.getenv("WRK_CHALLENGE")
local function escape(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end
local authorize = "/authorize?response_type=code&scope=openid&state=s&code_challenge_method=S256"
  .. "&client_id=" .. escape(client) .. "&redirect_uri=" .. escape(redirect)
  .. "&code_challenge=" .. escape(challenge)
local codes = {}
ops, bad = 0, 0

function request()
  local code = table.remove(codes)
  if code then
    return wrk.format("POST", "/token", {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Authorization"] = auth,
    }, "grant_type=authorization_code&code=" .. escape(code)
      .. "&redirect_uri=" .. escape(redirect) .. "&code_verifier=" .. verifier)
  end
  return wrk.format("GET", authorize, { ["Cookie"] = cookie })
end

function response(status, headers, body)
  if status == 302 or status == 303 then
    local code = (headers["Location"] or headers["location"] or ""):match("[?&]code=([^&]+)")
    if code then
      table.insert(codes, (code:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)))
    else
      bad = bad + 1
    end
  elseif status == 200 and body:find('"access_token"', 1, true) then
    ops = ops + 1
  elseif status < 400 then
    -- wrk counts 4xx/5xx itself; any other answer is wrong too.
    bad = bad + 1
  end
end

-- One fixed request, built once: what wrk does fastest. For GETs (JWKS,
-- discovery, userinfo) and POSTs whose body never changes (client_credentials,
-- introspection, password sign-in); the path is the URL's. Set by bench/run.sh:
--   WRK_METHOD, WRK_BODY, WRK_AUTHORIZATION, WRK_COOKIE
dofile("bench/wrk/report.lua")
wrk.method = os.getenv("WRK_METHOD") or "GET"
local body = os.getenv("WRK_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
local auth = os.getenv("WRK_AUTHORIZATION")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
local cookie = os.getenv("WRK_COOKIE")
if cookie and cookie ~= "" then wrk.headers["Cookie"] = cookie end

-- WRK_PIPELINE=N sends N requests back to back on each connection before
-- reading the answers (HTTP/1.1 pipelining): fewer system calls per request
-- on both sides, so a server as light as the hello-world no longer outruns the
-- driver on one core. Off (1) unless asked for.
local depth = tonumber(os.getenv("WRK_PIPELINE") or "1")
if depth > 1 then
  local batch
  function init(args)
    local one = wrk.format()
    batch = string.rep(one, depth)
  end
  function request()
    return batch
  end
end

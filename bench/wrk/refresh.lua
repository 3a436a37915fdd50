-- Refresh-token rotation: every refresh token is used exactly once. The pool
-- starts with one token per connection (WRK_TOKENS, a file, one per line, made
-- by bench/prepare.py); each answer puts the rotated token back, so a
-- connection never sends a token that was already spent.
dofile("bench/wrk/report.lua")
local pool = {}
for line in io.lines(os.getenv("WRK_TOKENS")) do
  if line ~= "" then table.insert(pool, line) end
end
local auth = os.getenv("WRK_AUTHORIZATION")
ops, bad = 0, 0

-- wrk calls request() once before the run to check what it returns; that
-- call must not spend a token.
local checked = false

function request()
  local token
  if not checked then
    checked = true
    token = pool[#pool]
  else
    token = table.remove(pool)
  end
  if token == nil then
    -- Every token in flight or lost to an error: this request fails loudly.
    token = "pool-empty"
  end
  return wrk.format("POST", "/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = auth,
  }, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  local next = body:match('"refresh_token":"([^"]+)"')
  if next then
    table.insert(pool, next)
    ops = ops + 1
  elseif status < 400 then
    -- wrk counts 4xx/5xx itself; an answer without a token is wrong too.
    bad = bad + 1
  end
end

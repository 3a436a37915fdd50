-- Shared by every scenario: counts what the scenario's own checks count per
-- thread and prints one machine-readable line for bench/measure.py.
-- `ops` is how many whole operations finished (a code flow is two requests);
-- `bad` counts 2xx/3xx answers the scenario still judged wrong (wrk counts
-- 4xx/5xx and socket errors itself).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

ops_per_request = 1

function done(summary, latency, requests)
  local ops, bad, counted = 0, 0, false
  for _, t in ipairs(threads) do
    local o = t:get("ops")
    if o ~= nil then counted = true; ops = ops + o end
    bad = bad + (t:get("bad") or 0)
  end
  if not counted then ops = summary.requests end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"ops":%d,"duration_us":%d,"errors":%d,"bad":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, ops, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout, bad,
    latency:percentile(50), latency:percentile(99)))
end

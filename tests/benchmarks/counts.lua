-- wrk script: count 2xx and other statuses across all threads and print one
-- JSON line (prefixed WRKJSON) with throughput, errors and latency percentiles.
-- WRK_METHOD sets the method; WRK_PATHS (comma-separated) makes each request
-- take the next path in turn (the original service's list page: 20 GETs).
wrk.method = os.getenv("WRK_METHOD") or "GET"

local paths = {}
for path in string.gmatch(os.getenv("WRK_PATHS") or "", "[^,]+") do
  table.insert(paths, path)
end
if #paths > 0 then
  local next_path = 0
  request = function()
    next_path = next_path % #paths + 1
    return wrk.format(nil, paths[next_path])
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  other = 0
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local total_ok, total_other = 0, 0
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_other = total_other + thread:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "ok": %d, "non_2xx": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, total_ok, total_other,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end

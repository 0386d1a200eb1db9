-- wrk script of bench/rest_load.py: GET /recommendations/<user> with a bearer token.
--
-- Environment: RL_TOKEN (the token), RL_USERS (a file of user ids, one a line; each
-- request picks one at random), RL_RATE (requests/s over all threads; 0 or unset: as
-- fast as the connections allow). At a rate, each thread hands out send times
-- start + i / (rate / threads) to whichever of its connections is free (wrk's delay()),
-- so the offered rate holds while a free connection exists.
-- done() prints one line: RESULT {json} with counts, latencies (us) and statuses.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } rl_timespec;
  int clock_gettime(int clk_id, rl_timespec *tp);
]]
local ts = ffi.new("rl_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("id", thread_count)
  table.insert(threads, thread)
end

local users = {}
local headers = {}
local interval_ms = 0
local started = nil
local sent = 0
statuses = {}

function init(args)
  for line in io.lines(os.getenv("RL_USERS")) do
    if #line > 0 then
      table.insert(users, line)
    end
  end
  headers["Authorization"] = "Bearer " .. os.getenv("RL_TOKEN")
  local rate = tonumber(os.getenv("RL_RATE") or "0")
  local n = tonumber(os.getenv("RL_THREADS") or "1")
  if rate > 0 then
    interval_ms = 1000.0 * n / rate
  end
  math.randomseed(id * 7919)
end

function request()
  local user = users[math.random(#users)]
  return wrk.format("GET", "/recommendations/" .. user .. "?k=10", headers)
end

function response(status, hdrs, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status == 503 and hdrs["Retry-After"] == nil then
    statuses["503_without_retry_after"] = (statuses["503_without_retry_after"] or 0) + 1
  end
end

if tonumber(os.getenv("RL_RATE") or "0") > 0 then
  function delay()
    local now = now_ms()
    if started == nil then
      started = now
    end
    local due = started + sent * interval_ms
    sent = sent + 1
    if due <= now then
      return 0
    end
    return due - now
  end
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for k, v in pairs(s) do
      counts[k] = (counts[k] or 0) + v
    end
  end
  local parts = {}
  for k, v in pairs(counts) do
    table.insert(parts, string.format('"%s": %d', k, v))
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"duration_us": %d, "requests": %d, "non_2xx": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f, "statuses": {%s}}\n',
    summary.duration, summary.requests, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, table.concat(parts, ", ")))
end

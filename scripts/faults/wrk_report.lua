-- wrk script for the fault scenarios: rotates over WRK_PATHS (comma-separated) and
-- reports statuses overall and per wall-clock second as one JSON line.
local paths = {}
for path in string.gmatch(os.getenv("WRK_PATHS") or "", "[^,]+") do
  table.insert(paths, path)
end

local threads = {}
local counter = 0
statuses = {}
seconds = {}

function setup(thread)
  table.insert(threads, thread)
end

function request()
  if #paths == 0 then
    return wrk.format(nil)
  end
  counter = counter + 1
  return wrk.format(nil, paths[(counter % #paths) + 1])
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  local slot = os.time() .. ":" .. key  -- flat keys: wrk cannot copy nested tables between threads
  seconds[slot] = (seconds[slot] or 0) + 1
end

local function json(value)
  if type(value) == "table" then
    local parts = {}
    for k, v in pairs(value) do
      table.insert(parts, string.format("%q:%s", tostring(k), json(v)))
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return tostring(value)
end

function done(summary, latency, requests)
  local all_statuses, all_seconds = {}, {}
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("statuses")) do
      all_statuses[k] = (all_statuses[k] or 0) + v
    end
    for slot, v in pairs(thread:get("seconds")) do
      all_seconds[slot] = (all_seconds[slot] or 0) + v
    end
  end
  local e = summary.errors
  io.write("WRK_JSON " .. json({
    requests = summary.requests,
    statuses = all_statuses,
    seconds = all_seconds,
    errors = {connect = e.connect, read = e.read, write = e.write, timeout = e.timeout},
    p50_us = latency:percentile(50),
    p99_us = latency:percentile(99),
  }) .. "\n")
end

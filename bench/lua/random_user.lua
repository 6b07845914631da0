-- GET /api/users/<id> with a bearer token, ids drawn uniformly from [min_id, max_id].
-- wrk ... -s random_user.lua URL -- ACCESS_TOKEN MIN_ID MAX_ID
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

init = function(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  min_id = tonumber(args[2])
  max_id = tonumber(args[3])
  math.randomseed(os.time() + (seed or 0) * 7919)
end

request = function()
  return wrk.format("GET", "/api/users/" .. math.random(min_id, max_id))
end

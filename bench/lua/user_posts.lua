-- GET /api/users/<id>/posts with author ids drawn uniformly from [min_id, max_id].
-- wrk ... -s user_posts.lua URL -- MIN_ID MAX_ID
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

init = function(args)
  min_id = tonumber(args[1])
  max_id = tonumber(args[2])
  math.randomseed(os.time() + (seed or 0) * 7919)
end

request = function()
  return wrk.format("GET", "/api/users/" .. math.random(min_id, max_id) .. "/posts?limit=20")
end

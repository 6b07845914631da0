-- POST /api/posts as one signed-in user.
-- wrk ... -s create_post.lua URL -- ACCESS_TOKEN
init = function(args)
  wrk.method = "POST"
  wrk.path = "/api/posts"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  wrk.body = '{"title": "Benchmark post", "body": "Written by wrk to measure the write path."}'
end

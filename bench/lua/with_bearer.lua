-- GET with a bearer token: wrk ... -s with_bearer.lua URL -- ACCESS_TOKEN
init = function(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
end

-- GET with a bearer token: wrk ... -s with_bearer.lua URL -- TOKEN
init = function(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
end

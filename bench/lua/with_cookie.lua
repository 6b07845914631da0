-- GET with a session cookie: wrk ... -s with_cookie.lua URL -- "name=value; ..."
init = function(args)
  wrk.headers["Cookie"] = args[1]
end

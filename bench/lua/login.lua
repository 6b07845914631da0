-- POST /api/auth/login with a seeded account (bcrypt-bound by design).
-- wrk ... -s login.lua URL -- EMAIL PASSWORD
init = function(args)
  wrk.method = "POST"
  wrk.path = "/api/auth/login"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = string.format('{"email": "%s", "password": "%s"}', args[1], args[2])
end

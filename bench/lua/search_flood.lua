-- Searches as fast as the connections allow, each request from one of eight client
-- addresses (documentation range, sent as X-Forwarded-For; the app runs behind ProxyFix).
local words = {"flask", "kestrel", "quokka", "zzzz", "flask postgres", "pyth", "kestr", "cursor token"}
local n = 0

request = function()
  n = n + 1
  local q = words[(n % #words) + 1]:gsub(" ", "%%20")
  local headers = {["X-Forwarded-For"] = "203.0.113." .. ((n % 8) + 1)}
  return wrk.format("GET", "/api/posts?limit=20&q=" .. q, headers)
end

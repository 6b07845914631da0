-- Searches as fast as the connections allow, each request from one of eight client
-- addresses (documentation range, sent as X-Forwarded-For; the app runs behind ProxyFix).
-- wrk ... -s search_flood.lua URL [-- PREFIX]: the addresses' first three parts (the warm-up's own).
local words = {"flask", "kestrel", "quokka", "zzzz", "flask postgres", "pyth", "kestr", "cursor token"}
local prefix = "203.0.113."
local n = 0

init = function(args)
  if args[1] then
    prefix = args[1]
  end
end

request = function()
  n = n + 1
  local q = words[(n % #words) + 1]:gsub(" ", "%%20")
  local headers = {["X-Forwarded-For"] = prefix .. ((n % 8) + 1)}
  return wrk.format("GET", "/api/posts?limit=20&q=" .. q, headers)
end

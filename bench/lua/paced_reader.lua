-- An ordinary reader: the first page four times a second, from an address of its own.
request = function()
  return wrk.format("GET", nil, {["X-Forwarded-For"] = "198.51.100.77"})
end

delay = function()
  return 250
end

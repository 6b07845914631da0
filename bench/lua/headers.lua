-- The same request with extra headers.
-- wrk ... -s headers.lua URL -- NAME VALUE [NAME VALUE ...]
init = function(args)
  for i = 1, #args, 2 do
    wrk.headers[args[i]] = args[i + 1]
  end
end

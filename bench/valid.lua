-- wrk script: GET /valid for the seeded tokens in turn.
local tokens = {}
for line in io.lines(os.getenv("SKS_TOKENS")) do tokens[#tokens + 1] = line end
local i = math.random(#tokens)
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/valid?realm=bench&token=" .. tokens[i])
end

-- GET of random paths from the file IDS names, one path per line (TOKEN from the environment).
dofile(os.getenv("WRK_DIR") .. "/report.lua")
local paths = {}
for line in io.lines(os.getenv("IDS")) do paths[#paths + 1] = line end
math.randomseed(os.time())
function request()
  return wrk.format("GET", paths[math.random(#paths)], {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
  })
end

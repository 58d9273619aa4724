-- POST /api/v1/transfers of 0.01 from the caller's wallet to RECIPIENT, a fresh Idempotency-Key
-- per request.
dofile(os.getenv("WRK_DIR") .. "/report.lua")
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local n = 0
local run = tostring(os.time())
local body = string.format('{"recipient_id":"%s","amount":"0.01","currency":"USD"}', os.getenv("RECIPIENT"))
function request()
  n = n + 1
  return wrk.format("POST", "/api/v1/transfers", {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("transfer-%s-%d-%d", run, tid, n),
  }, body)
end

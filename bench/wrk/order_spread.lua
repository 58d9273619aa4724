-- POST /api/v1/orders of one unit of one of 100 tracked products, at random (TOKEN from the
-- environment): reservations spread over 100 stock rows instead of one.
dofile(os.getenv("WRK_DIR") .. "/report.lua")
function request()
  local sku = "sku-s" .. math.random(1, 100)
  return wrk.format("POST", "/api/v1/orders", {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
    ["Content-Type"] = "application/json",
  }, '{"currency":"USD","items":[{"sku":"' .. sku .. '","quantity":1}]}')
end

-- POST /api/v1/orders (TOKEN from the environment).
dofile(os.getenv("WRK_DIR") .. "/report.lua")
function request()
  return wrk.format("POST", "/api/v1/orders", {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
    ["Content-Type"] = "application/json",
  }, '{"currency":"USD","items":[{"sku":"sku-1","quantity":2,"price":"4.50"},{"sku":"sku-2","quantity":1,"price":"30.00"}]}')
end

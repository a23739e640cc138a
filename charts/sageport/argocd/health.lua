-- Argo CD health check for every sageport.io kind (resource.customizations."sageport.io/*").
-- Healthy when Ready=True for the current generation, Degraded when Ready=False, otherwise
-- Progressing (no status yet, a newer generation not yet observed, or Ready=Unknown).
-- TransformJob is judged on its Succeeded condition instead of Ready.
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }
if obj.status == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= nil and obj.status.observedGeneration < generation then
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end
local wanted = "Ready"
if obj.kind == "TransformJob" then
  wanted = "Succeeded"
end
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == wanted then
      local message = condition.message or ""
      if generation ~= nil and condition.observedGeneration ~= nil and condition.observedGeneration < generation then
        hs.message = "Waiting for the operator to observe generation " .. generation
        return hs
      end
      if condition.status == "True" then
        return { status = "Healthy", message = message }
      elseif condition.status == "False" then
        return { status = "Degraded", message = (condition.reason or "") .. ": " .. message }
      end
      hs.message = message
      return hs
    end
  end
end
return hs

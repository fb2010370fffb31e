# Compute mode without ParaTime bundles or an entity descriptor.
# expect-assertion: services.paratime-node: compute mode needs at least one ParaTime bundle in `runtimes`.
# expect-assertion: services.paratime-node: compute mode needs the operator's entity descriptor in `entity`.
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    mode = "compute";
    settings.genesis.file = ./files/genesis.json;
  };
}

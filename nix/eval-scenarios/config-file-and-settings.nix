# configFile plus a `settings` key other than the declarable ones is refused.
# expect-assertion: services.paratime-node: set either `configFile` or `settings`, not both
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    configFile = ./files/config.yml;
    settings.genesis.file = ./files/genesis.json;
  };
}

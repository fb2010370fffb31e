# Opening the metrics port without serving metrics is refused.
# expect-assertion: services.paratime-node: metrics.openFirewall is set but metrics.enable is not: nothing would listen on the port.
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    settings.genesis.file = ./files/genesis.json;
    metrics.openFirewall = true;
  };
}

# extraArgs reach ExecStart verbatim: systemd's `%` specifiers and `$` variables are escaped
# (utils.escapeSystemdExecArgs, W6).
{ config, lib, nixEval, ... }:
let
  execStart = lib.last config.systemd.services.paratime-node.serviceConfig.ExecStart;
in
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    settings.genesis.file = ./files/genesis.json;
    extraArgs = [
      "--unsafe-debug"
      "100%"
      "$HOME has spaces"
    ];
  };
  assertions = [
    {
      assertion = lib.hasSuffix ''"--unsafe-debug" "100%%" "$$HOME has spaces"'' execStart;
      message = "scenario: extraArgs should be escaped for systemd, got: ${execStart}";
    }
  ];
}

# configFile: the units, the firewall and the port checks use what `settings` declares
# (common.data_dir, p2p.port), and the build checks that the file agrees (W5). The file names a
# genesis document on the host, so `config check` is off; the agreement check still runs.
{ config, nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    configFile = ./files/config.yml;
    checkConfig = false;
    openFirewall = true;
    settings.p2p.port = 9300;
  };
  assertions = [
    {
      assertion = config.networking.firewall.allowedTCPPorts == [ 9300 26656 ];
      message = "scenario: the firewall should open the declared p2p.port 9300 and the consensus port 26656 (default listen address)";
    }
  ];
}

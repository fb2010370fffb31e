# openFirewall opens p2p.port for TCP and UDP (libp2p's TCP and QUIC) and the consensus port for
# TCP (the BFT engine), per instance, and nothing else.
{ config, lib, nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    openFirewall = true;
    settings.genesis.file = ./files/genesis.json;
    instances.second = {
      enable = true;
      settings = {
        genesis.file = ./files/genesis.json;
        p2p.port = 9300;
        consensus.listen_address = "tcp://0.0.0.0:26756";
      };
    };
  };
  assertions = [
    {
      assertion = lib.sort lib.lessThan config.networking.firewall.allowedTCPPorts == [ 9200 26656 ]
        && config.networking.firewall.allowedUDPPorts == [ 9200 ];
      message = "scenario: the firewall should open 9200/tcp, 26656/tcp and 9200/udp only (got TCP ${toString config.networking.firewall.allowedTCPPorts}, UDP ${toString config.networking.firewall.allowedUDPPorts})";
    }
  ];
}

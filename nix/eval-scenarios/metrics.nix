# metrics.enable writes `metrics.mode: pull` and `metrics.address` into config.yml (per
# instance); metrics.openFirewall opens that port (TCP) for the instance that asks and nothing
# else; the documented Prometheus example scrapes the instances' addresses. nixpkgs'
# services.prometheus is not available to this evaluation: the scenario declares
# `scrapeConfigs` with nixpkgs' shape (job_name, static_configs.*.targets) as a stand-in.
# expect-setting: paratime-node.yml metrics = {"mode": "pull", "address": "0.0.0.0:9100"}
# expect-setting: paratime-node-second.yml metrics = {"mode": "pull", "address": "127.0.0.1:3001"}
# expect-setting: paratime-node-third.yml metrics = absent
{ config, lib, nixEval, ... }:
let
  node = config.services.paratime-node;
in
{
  imports = [ nixEval.flake.nixosModules.default ];
  options.services.prometheus.scrapeConfigs = lib.mkOption {
    type = lib.types.listOf (lib.types.submodule {
      options.job_name = lib.mkOption { type = lib.types.str; };
      options.static_configs = lib.mkOption {
        type = lib.types.listOf (lib.types.submodule {
          options.targets = lib.mkOption { type = lib.types.listOf lib.types.str; };
        });
      };
    });
    default = [ ];
  };
  config = {
    services.paratime-node = {
      enable = true;
      settings.genesis.file = ./files/genesis.json;
      metrics = {
        enable = true;
        address = "0.0.0.0:9100";
        openFirewall = true;
      };
      instances.second = {
        enable = true;
        settings = {
          genesis.file = ./files/genesis.json;
          p2p.port = 9300;
          consensus.listen_address = "tcp://0.0.0.0:26756";
        };
        metrics = {
          enable = true;
          address = "127.0.0.1:3001";
        };
      };
      instances.third = {
        enable = true;
        settings = {
          genesis.file = ./files/genesis.json;
          p2p.port = 9400;
          consensus.listen_address = "tcp://0.0.0.0:26856";
        };
      };
    };
    # The example of docs/metrics.md and the README: one job, every instance that serves metrics.
    services.prometheus.scrapeConfigs = [
      {
        job_name = "paratime-node";
        static_configs = [
          {
            targets = map (i: i.metrics.address) (lib.filter (i: i.metrics.enable) ([ node ] ++ lib.attrValues node.instances));
          }
        ];
      }
    ];
    assertions = [
      {
        assertion = config.networking.firewall.allowedTCPPorts == [ 9100 ] && config.networking.firewall.allowedUDPPorts == [ ];
        message = "scenario: only the first instance's metrics port (9100/tcp) should be open (got TCP ${toString config.networking.firewall.allowedTCPPorts}, UDP ${toString config.networking.firewall.allowedUDPPorts})";
      }
      {
        assertion = (lib.head config.services.prometheus.scrapeConfigs).static_configs == [{ targets = [ "0.0.0.0:9100" "127.0.0.1:3001" ]; }];
        message = "scenario: the scrape config should list both metrics addresses";
      }
    ];
  };
}

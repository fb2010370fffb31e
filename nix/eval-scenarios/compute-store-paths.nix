# A compute node whose entity, genesis (path literals) and ParaTime bundle (a package) are all
# rendered as store paths: the build-time check sees every file, so nothing is skipped and no
# warning is given (A2, W3). The README's example is evaluated as written by scripts/nix-check.sh.
{ nixEval, ... }:
let
  paratime-node = nixEval.flake;
in
{
  imports = [ paratime-node.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    mode = "compute";
    settings = {
      genesis.file = ./files/genesis.json;
      consensus.external_address = "tcp://203.0.113.5:26656";
      p2p.registration.addresses = [ "203.0.113.5:9200" ];
      p2p.seeds = [ "H6u9MtuoWRKn5DKSgarj/dzr2Z9BsjuRHgRAoXITOcU=@203.0.113.7:9200" ];
    };
    runtimes = [ paratime-node.packages.x86_64-linux.kvstore-bundle ];
    entity = ./files/entity.json;
  };
}

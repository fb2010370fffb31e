# NixOS module: services.paratime-node (the canonical instance, plain unit names) and
# services.paratime-node.instances.<name> (paratime-node@<name>.service and friends).
#
# The units come from the package (systemd/ in the repository, installed through
# systemd.packages); this module only adds drop-ins: the generated config file, the sandbox
# socket path and extra arguments. config.yml follows oasis-node's format (RFC 42 `settings`).
{ config
, lib
, pkgs
, ...
}:

let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    types
    ;

  cfg = config.services.paratime-node;
  yaml = pkgs.formats.yaml { };
  logLevel = types.enum [
    "debug"
    "info"
    "warn"
    "error"
  ];

  # The options of one node; `name` is "" for the canonical instance.
  instanceModule =
    name:
    { options, ... }:
    let
      unitName = if name == "" then "paratime-node" else "paratime-node-${name}";
      stateDir = "/var/lib/${unitName}";
    in
    {
      options = {
        enable = mkEnableOption "the paratime-node ParaTime node${lib.optionalString (name != "") " instance ${name}"}";

        package = mkOption {
          type = types.package;
          default = pkgs.callPackage ./package.nix { };
          defaultText = lib.literalExpression "pkgs.callPackage ./package.nix { }";
          description = "The paratime-node package (binary, units, AppArmor profiles).";
        };

        mode = mkOption {
          type = types.enum [
            "validator"
            "compute"
            "client"
            "seed"
          ];
          default = "client";
          description = "Node mode (`mode` in config.yml).";
        };

        runtimes = mkOption {
          type = types.listOf types.path;
          default = [ ];
          example = lib.literalExpression "[ inputs.paratime-node.packages.x86_64-linux.kvstore-bundle ]";
          description = "ParaTime bundles (`.orc`) to host; become `runtime.paths`.";
        };

        entity = mkOption {
          type = types.nullOr types.path;
          default = null;
          example = lib.literalExpression "./entity.json";
          description = "The operator's entity descriptor (`registration.entity`). Required in compute and validator modes.";
        };

        openFirewall = mkOption {
          type = types.bool;
          default = false;
          description = "Open the p2p port and the consensus port, TCP and UDP. Never the control socket.";
        };

        extraArgs = mkOption {
          type = types.listOf types.str;
          default = [ ];
          description = "Extra command-line arguments for `paratime-node`.";
        };

        checkConfig = mkOption {
          type = types.bool;
          default = true;
          description = "Check the generated config.yml at build time with `paratime-node config check`.";
        };

        configFile = mkOption {
          type = types.nullOr types.path;
          default = null;
          description = "A complete config.yml to use instead of `settings` (an escape hatch; exclusive with `settings`).";
        };

        settings = mkOption {
          default = { };
          description = ''
            config.yml of oasis-node's format, freeform (RFC 42). Typed below are the keys this module
            reads; anything else is passed through and checked by `paratime-node config check`.
          '';
          type = types.submodule {
            freeformType = yaml.type;
            options = {
              common.data_dir = mkOption {
                type = types.str;
                default = "${stateDir}/data";
                description = "The node's data directory (0700, created by the node).";
              };
              common.internal_socket_path = mkOption {
                type = types.str;
                default = "/run/${unitName}/internal.sock";
                readOnly = true;
                description = "The control socket; owned by the socket unit.";
              };
              common.log.level = mkOption {
                type = types.attrsOf logLevel;
                default.default = "info";
                example = {
                  default = "info";
                  "runtime/host" = "debug";
                };
                description = "Per-module log levels; the longest matching module prefix wins.";
              };
              genesis.file = mkOption {
                type = types.str;
                description = "Path of the network's genesis document.";
              };
              consensus.external_address = mkOption {
                type = types.str;
                default = "";
                example = "tcp://203.0.113.5:26656";
                description = "The consensus address other nodes reach this node at.";
              };
              consensus.listen_address = mkOption {
                type = types.str;
                default = "tcp://0.0.0.0:26656";
                description = "The consensus listen address.";
              };
              p2p.port = mkOption {
                type = types.port;
                default = 9200;
                description = "libp2p port (TCP and QUIC).";
              };
              p2p.seeds = mkOption {
                type = types.listOf types.str;
                default = [ ];
                example = [ "H6u9MtuoWRKn5DKSgarj/dzr2Z9BsjuRHgRAoXITOcU=@203.0.113.7:9200" ];
                description = "Seed nodes, `PUBKEY@IP:port`.";
              };
              p2p.registration.addresses = mkOption {
                type = types.listOf types.str;
                default = [ ];
                description = "`IP:port` addresses advertised in the node descriptor.";
              };
            };
          };
        };

        settingsDefined = mkOption {
          type = types.bool;
          internal = true;
          readOnly = true;
          # A definition of `settings` outside the option's own default.
          default = options.settings.highestPrio < 1500;
          description = "Whether `settings` was set (it and `configFile` exclude each other).";
        };
      };
    };

  # `mode`, `runtimes` and `entity` are written into the generated settings.
  generatedSettings =
    inst:
    lib.recursiveUpdate inst.settings (
      {
        inherit (inst) mode;
        runtime.paths = map toString inst.runtimes;
      }
      // lib.optionalAttrs (inst.entity != null) { registration.entity = toString inst.entity; }
    );

  configFileOf =
    name: inst:
    if inst.configFile != null then
      inst.configFile
    else
      let
        file = yaml.generate "paratime-node${lib.optionalString (name != "") "-${name}"}.yml" (
          generatedSettings inst
        );
      in
      if inst.checkConfig then
        pkgs.runCommand "paratime-node-config-checked.yml" { nativeBuildInputs = [ inst.package ]; } ''
          paratime-node config check --config ${file}
          cp ${file} $out
        ''
      else
        file;

  enabled =
    lib.optionalAttrs cfg.enable { "" = cfg; }
    // lib.filterAttrs (_: inst: inst.enable) cfg.instances;

  unitsOf =
    name:
    let
      suffix = if name == "" then "" else "@${name}";
    in
    {
      node = "paratime-node${suffix}";
      sandbox = "paratime-node-sandbox${suffix}";
      runDir = if name == "" then "paratime-node-sandbox" else "paratime-node-sandbox-${name}";
    };

  portOf = url: lib.toInt (lib.last (lib.splitString ":" url));

  instanceUnits =
    name: inst:
    let
      u = unitsOf name;
      args = lib.escapeShellArgs (
        [
          "--config"
          (configFileOf name inst)
          "--sandbox-socket"
          "/run/${u.runDir}/sandbox.sock"
        ]
        ++ inst.extraArgs
      );
      dataDir = inst.settings.common.data_dir;
    in
    {
      "${u.node}" = {
        overrideStrategy = "asDropin";
        wantedBy = [ "multi-user.target" ];
        restartTriggers = [ (configFileOf name inst) ];
        serviceConfig.ExecStart = [
          ""
          "${lib.getExe inst.package} ${args}"
        ];
      };
      "${u.sandbox}" = {
        overrideStrategy = "asDropin";
        serviceConfig.ExecStart = [
          ""
          "${lib.getExe inst.package} sandbox-launcher --bundles-dir ${dataDir}/runtimes/bundles --sandbox-binary ${lib.getExe pkgs.bubblewrap} --log-level info"
        ];
      };
    };

  allPorts = lib.concatMap
    (inst: [
      inst.settings.p2p.port
      (portOf inst.settings.consensus.listen_address)
    ])
    (lib.attrValues enabled);
in
{
  options.services.paratime-node = lib.mkOption {
    default = { };
    description = "paratime-node, a hardened ParaTime compute node.";
    type = types.submodule [
      (instanceModule "")
      {
        options.instances = mkOption {
          type = types.attrsOf (types.submodule ({ name, ... }: { imports = [ (instanceModule name) ]; }));
          default = { };
          description = ''
            Further nodes on the same host, each with the options of `services.paratime-node`,
            run as `paratime-node@<name>.service` with its own state directory and sockets.
          '';
        };
      }
    ];
  };

  config = mkIf (enabled != { }) {
    assertions =
      lib.concatLists
        (
          lib.mapAttrsToList
            (
              name: inst:
                let
                  where = if name == "" then "services.paratime-node" else "services.paratime-node.instances.${name}";
                in
                [
                  {
                    assertion = inst.configFile == null || !inst.settingsDefined;
                    message = "${where}: set either `configFile` or `settings`, not both.";
                  }
                  {
                    assertion = inst.mode != "compute" || inst.runtimes != [ ] || inst.configFile != null;
                    message = "${where}: compute mode needs at least one ParaTime bundle in `runtimes`.";
                  }
                  {
                    assertion = !(lib.elem inst.mode [ "compute" "validator" ]) || inst.entity != null || inst.configFile != null;
                    message = "${where}: ${inst.mode} mode needs the operator's entity descriptor in `entity`.";
                  }
                  {
                    assertion = inst.mode != "client" || inst.entity == null;
                    message = "${where}: a client node must not have an `entity`; use compute mode.";
                  }
                ]
            )
            enabled
        )
      ++ [
        {
          assertion = lib.allUnique allPorts;
          message = "services.paratime-node: two instances use the same port (p2p.port or consensus.listen_address): ${toString allPorts}.";
        }
        {
          assertion = lib.allUnique (lib.mapAttrsToList (_: inst: inst.settings.common.data_dir) enabled);
          message = "services.paratime-node: two instances share a data directory (settings.common.data_dir).";
        }
        {
          assertion = (config.boot.kernel.sysctl."user.max_user_namespaces" or 1) != 0;
          message = "services.paratime-node: the sandbox needs user namespaces, but boot.kernel.sysctl.\"user.max_user_namespaces\" is 0.";
        }
        {
          assertion = !(config.security.allowUserNamespaces or true == false);
          message = "services.paratime-node: the sandbox needs user namespaces; set security.allowUserNamespaces = true.";
        }
      ];

    systemd.packages = lib.unique (lib.mapAttrsToList (_: inst: inst.package) enabled);
    systemd.services = lib.mkMerge (lib.mapAttrsToList instanceUnits enabled);
    systemd.sockets = lib.mkMerge (
      lib.mapAttrsToList
        (name: _: {
          "${(unitsOf name).node}" = {
            overrideStrategy = "asDropin";
            wantedBy = [ "sockets.target" ];
          };
          "${(unitsOf name).sandbox}" = {
            overrideStrategy = "asDropin";
            wantedBy = [ "sockets.target" ];
          };
        })
        enabled
    );

    users.users.paratime = {
      isSystemUser = true;
      group = "paratime";
      description = "paratime-node";
    };
    users.groups.paratime = { };

    environment.systemPackages = lib.unique (lib.mapAttrsToList (_: inst: inst.package) enabled);

    networking.firewall = lib.mkMerge (
      lib.mapAttrsToList
        (
          _: inst:
            let
              ports = [
                inst.settings.p2p.port
                (portOf inst.settings.consensus.listen_address)
              ];
            in
            mkIf inst.openFirewall {
              allowedTCPPorts = ports;
              allowedUDPPorts = ports;
            }
        )
        enabled
    );

    # One set of profiles (they cover every instance's paths), from the canonical package.
    security.apparmor.policies = mkIf config.security.apparmor.enable (
      let
        package = lib.head (lib.mapAttrsToList (_: inst: inst.package) enabled);
      in
      {
        bwrap.profile = ''include "${package}/etc/apparmor.d/bwrap"'';
        paratime-node.profile = ''include "${package}/etc/apparmor.d/paratime-node"'';
      }
    );
  };
}

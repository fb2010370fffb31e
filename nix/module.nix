# NixOS module: services.paratime-node (the canonical instance, plain unit names) and
# services.paratime-node.instances.<name> (paratime-node@<name>.service and friends).
#
# The units are the ones shipped in systemd/ (installed from the package through
# systemd.packages; the instance templates are derived from them by systemd/make-templates.sh).
# This module adds only drop-ins, and only these:
# - paratime-node[@<name>].service: `ExecStart=` (the shipped command line with the generated
#   config file, the instance's binary and sandbox socket, then `extraArgs`; a new config changes
#   it, so switching restarts the node) and
#   NixOS's own `Environment=` lines (no restartTriggers: its store name would contain the
#   instance's `@`, which Nix refuses);
#   with a custom `settings.common.data_dir`, also `ReadWritePaths=<data_dir>`.
# - paratime-node-sandbox[@<name>].service: nothing, except with a custom data_dir or an
#   instance `package` other than the top-level one: `ExecStart=` (the shipped command line with
#   that data dir and binary), and with a custom data_dir `TemporaryFileSystem=<data_dir>:ro` and
#   `BindReadOnlyPaths=` reset to `<data_dir>/runtimes/bundles`.
# - the sockets: `WantedBy=sockets.target`; the node service: `WantedBy=multi-user.target`.
#
# NixOS ignores the package's sysusers.d and tmpfiles.d: the users come from `users.users`
# below, and the tmpfiles rules are derived per instance from systemd/tmpfiles.d (the lines
# under /var/lib/paratime-node, moved to the instance's state and data directories).
# config.yml follows oasis-node's format (RFC 42 `settings`).
{ config
, lib
, pkgs
, utils
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

  # The shipped units and tmpfiles.d are read from the source tree (not from a build output: no
  # import-from-derivation); the package installs the same files.
  shippedTmpfiles = builtins.readFile ../systemd/tmpfiles.d/paratime-node.conf;
  defaultStateDir = "/var/lib/paratime-node";
  defaultDataDir = "${defaultStateDir}/data";

  # A file the node reads (types.path): a path literal (./genesis.json) or a package is copied
  # into the store by the interpolation below, so it enters the system closure and the
  # build-time check reads it; a string is a location on the host, used as is and not checked at
  # build time. (`toString ./x` would give the source path without store context.)
  render = f: "${f}";
  inStore = f: lib.hasPrefix "${builtins.storeDir}/" (render f);

  # `tcp://IP:PORT` (or `IP:PORT`): the port, or null.
  portOf =
    url:
    let
      m = builtins.match "(tcp://)?(.+):([0-9]{1,5})" url;
      p = if m == null then null else lib.toInt (lib.elemAt m 2);
    in
    if p != null && p >= 1 && p <= 65535 then p else null;

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

        package =
          if name == "" then
            lib.mkPackageOption pkgs "paratime-node" { }
            // {
              description = ''
                The paratime-node package (binary, units, AppArmor profiles). The flake's
                `nixosModules.default` sets it to the flake's own build; with the module alone,
                apply the flake's `overlays.default`.
              '';
            }
          else
            mkOption {
              type = types.package;
              default = cfg.package;
              defaultText = lib.literalExpression "config.services.paratime-node.package";
              description = "The paratime-node package of this instance (the units always come from the top-level one).";
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
          example = lib.literalExpression "[ inputs.paratime-node.packages.x86_64-linux.kvstore-bundle ./my-paratime.orc ]";
          description = "ParaTime bundles (`.orc`) to host; become `runtime.paths`. Path literals and packages are copied into the store.";
        };

        entity = mkOption {
          type = types.nullOr types.path;
          default = null;
          example = lib.literalExpression "./entity.json";
          description = "The operator's entity descriptor (`registration.entity`). Required in compute and validator modes. A path literal is copied into the store.";
        };

        openFirewall = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Open `p2p.port`, TCP and UDP (libp2p's TCP and QUIC transports), and the port of
            `consensus.listen_address`, TCP (the BFT consensus engine). Never the control socket,
            which is not on the network.
          '';
        };

        metrics = {
          enable = mkOption {
            type = types.bool;
            default = false;
            description = ''
              Serve Prometheus metrics: writes `metrics.mode: pull` and `metrics.address` into
              config.yml (the names are listed in docs/metrics.md). A Prometheus on this host
              scrapes it with
              `services.prometheus.scrapeConfigs = [ { job_name = "paratime-node"; static_configs = [ { targets = [ "127.0.0.1:3000" ]; } ]; } ];`.
              With `configFile`, set the metrics keys in that file instead.
            '';
          };
          address = mkOption {
            type = types.str;
            default = "127.0.0.1:3000";
            example = "0.0.0.0:3000";
            description = "`metrics.address`: the IP:PORT the endpoint listens on (0.0.0.0:PORT for every interface).";
          };
          openFirewall = mkOption {
            type = types.bool;
            default = false;
            description = ''
              Open the metrics port (TCP) in the firewall. The endpoint has no authentication:
              open it only where your Prometheus scrapes from (`openFirewall` never opens it).
            '';
          };
        };

        extraArgs = mkOption {
          type = types.listOf types.str;
          default = [ ];
          description = "Extra command-line arguments for `paratime-node`, passed verbatim (systemd's `%` and `$` are escaped).";
        };

        checkConfig = mkOption {
          type = types.bool;
          default = true;
          description = ''
            Check the config file at build time with `paratime-node config check`. Files named
            by a string outside the store (not visible to the build) are skipped, with a warning.
          '';
        };

        configFile = mkOption {
          type = types.nullOr types.path;
          default = null;
          example = lib.literalExpression "./config.yml";
          description = ''
            A complete config.yml to use instead of `settings` (an escape hatch). `settings` may
            then only declare `common.data_dir` and `p2p.port`, which the units and the firewall
            use; the build checks that the file agrees with them.
          '';
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
                description = ''
                  The node's data directory (0700). Another directory than the default is made
                  writable for the node and bound into the sandbox launcher by the module.
                '';
              };
              common.internal_socket_path = mkOption {
                type = types.str;
                default = "/run/${unitName}/internal.sock";
                readOnly = true;
                description = "The control socket; owned by the socket unit.";
              };
              common.log.level = mkOption {
                type = types.submodule {
                  freeformType = types.attrsOf logLevel;
                  options.default = mkOption {
                    type = logLevel;
                    default = "info";
                    description = "The level of modules without a level of their own.";
                  };
                };
                default = { };
                example = {
                  "runtime/host" = "debug";
                };
                description = "Per-module log levels; the longest matching module prefix wins, `default` (info) for the rest.";
              };
              genesis.file = mkOption {
                type = types.path;
                example = lib.literalExpression "./genesis.json";
                description = "The network's genesis document. A path literal is copied into the store.";
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
                description = "The consensus listen address, `tcp://IP:PORT`.";
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

        settingsDeclared = mkOption {
          type = types.listOf (types.listOf types.str);
          internal = true;
          readOnly = true;
          # Every key set in `settings` outside the option's own default, as a path.
          default =
            let
              leaves =
                prefix: v:
                if builtins.isAttrs v && !(lib.isDerivation v) && !(v ? _type) then
                  lib.concatLists (lib.mapAttrsToList (k: leaves (prefix ++ [ k ])) v)
                else
                  [ prefix ];
            in
            lib.unique (lib.concatMap (d: leaves [ ] d.value) options.settings.definitionsWithLocations);
          description = "The keys set in `settings` (with `configFile`, only the declared ones are allowed).";
        };
      };
    };

  enabled =
    lib.optionalAttrs cfg.enable { "" = cfg; }
    // lib.filterAttrs (_: inst: inst.enable) cfg.instances;

  whereOf = name: if name == "" then "services.paratime-node" else "services.paratime-node.instances.${name}";

  namesOf =
    name:
    let
      suffix = if name == "" then "" else "@${name}";
      dash = if name == "" then "" else "-${name}";
    in
    {
      node = "paratime-node${suffix}";
      sandbox = "paratime-node-sandbox${suffix}";
      sandboxSocket = "/run/paratime-node-sandbox${dash}/sandbox.sock";
      stateDir = "/var/lib/paratime-node${dash}";
      drv = "paratime-node${dash}";
    };

  # With `configFile`, these keys of `settings` state what the file says (the units and the
  # firewall use them); anything else in `settings` is refused.
  declarableWithConfigFile = [
    [ "common" "data_dir" ]
    [ "p2p" "port" ]
  ];

  # The files the node reads that `settings` names, rendered: key, value, and the stand-in the
  # build-time check uses when the value is not in the store.
  filesOf =
    inst:
    [
      {
        key = "genesis.file";
        value = render inst.settings.genesis.file;
        standIn = "unchecked-genesis.json";
        standInText = "{}";
      }
    ]
    ++ lib.optional (inst.entity != null) {
      key = "registration.entity";
      value = render inst.entity;
      standIn = "unchecked-entity.json";
      # config check reads the entity's `id`: a stand-in with the all-zero key.
      standInText = ''{"id": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}'';
    }
    ++ lib.imap0
      (i: r: {
        key = "runtime.paths[${toString i}]";
        value = render r;
        standIn = "unchecked-runtime-${toString i}.orc";
        standInText = "";
      })
      inst.runtimes;

  unseenFilesOf = inst: lib.filter (f: !(lib.hasPrefix "${builtins.storeDir}/" f.value)) (filesOf inst);

  # `mode`, `runtimes` and `entity` are written into the generated settings; the files the node
  # reads are rendered as store paths (path literals) or kept as given (strings).
  generatedSettings =
    inst: swap:
    let
      file = key: v: swap key (render v);
    in
    lib.recursiveUpdate inst.settings (
      {
        inherit (inst) mode;
        genesis.file = file "genesis.file" inst.settings.genesis.file;
        runtime.paths = lib.imap0 (i: file "runtime.paths[${toString i}]") inst.runtimes;
      }
      // lib.optionalAttrs (inst.entity != null) { registration.entity = file "registration.entity" inst.entity; }
      // lib.optionalAttrs inst.metrics.enable { metrics = { mode = "pull"; inherit (inst.metrics) address; }; }
    );

  message = key: value: "paratime-node config check: ${key} = ${value} is not in the Nix store, so the build cannot read it: not checked here (it must exist on the host when the node starts)";

  configFileOf =
    name: inst:
    let
      n = namesOf name;
      dataDir = inst.settings.common.data_dir;
    in
    if inst.configFile != null then
      if !(inStore inst.configFile) then
        render inst.configFile
      else
        pkgs.runCommand "${n.drv}-config-checked.yml"
          {
            nativeBuildInputs = [
              inst.package
              pkgs.remarshal
              pkgs.jq
            ];
          }
          (
            ''
              # The units and the firewall use these two values: the file must agree with them.
              yaml2json ${inst.configFile} config.json
              got=$(jq -r '.common.data_dir // ""' config.json)
              if [ "$got" != ${lib.escapeShellArg dataDir} ]; then
                echo "configFile: common.data_dir is '$got', but the units are set up for '${dataDir}': set ${whereOf name}.settings.common.data_dir = \"$got\"" >&2
                exit 1
              fi
              got=$(jq -r '.p2p.port // 9200' config.json)
              if [ "$got" != ${toString inst.settings.p2p.port} ]; then
                echo "configFile: p2p.port is $got, but the firewall and the port checks use ${toString inst.settings.p2p.port}: set ${whereOf name}.settings.p2p.port = $got" >&2
                exit 1
              fi
            ''
            + lib.optionalString inst.checkConfig ''
              paratime-node config check --config ${inst.configFile}
            ''
            + ''
              cp ${inst.configFile} $out
            ''
          )
    else
      let
        file = yaml.generate "${n.drv}.yml" (generatedSettings inst (_: v: v));
        unseen = unseenFilesOf inst;
        # The same settings with every file the build cannot see replaced by a stand-in.
        checkInput =
          if unseen == [ ] then
            file
          else
            yaml.generate "${n.drv}-check-input.yml" (
              generatedSettings inst (key: v: (lib.findFirst (f: f.key == key) { standIn = v; } unseen).standIn)
            );
      in
      if inst.checkConfig then
        pkgs.runCommand "${n.drv}-config-checked.yml" { nativeBuildInputs = [ inst.package ]; }
          (
            lib.concatMapStrings
              (f: ''
                echo ${lib.escapeShellArg (message f.key f.value)}
                printf '%s' ${lib.escapeShellArg f.standInText} > ${f.standIn}
              '')
              unseen
            + ''
              paratime-node config check --config ${checkInput}${
                lib.concatMapStrings (f: " --unchecked-file ${f.standIn}") (
                  lib.filter (f: lib.hasSuffix ".orc" f.standIn) unseen
                )
              }
              cp ${file} $out
            ''
          )
      else
        file;

  # A shipped unit's `ExecStart=` command line with some of its words replaced, escaped for
  # systemd. Every word to replace must be there (else the shipped unit changed in a way this
  # module must follow: evaluation stops and says which).
  shippedExecStart =
    file: replace: extra:
    let
      unit = builtins.readFile file;
      line = lib.findFirst (lib.hasPrefix "ExecStart=") (throw "${toString file}: no ExecStart= line") (lib.splitString "\n" unit);
      words = lib.filter (w: w != "") (lib.splitString " " (lib.removePrefix "ExecStart=" line));
      missing = lib.filter (w: !(lib.elem w words)) (lib.attrNames replace);
    in
    if missing != [ ] then
      throw "${toString file}: ExecStart= no longer names ${toString missing}, which nix/module.nix replaces"
    else
      utils.escapeSystemdExecArgs (map (w: replace.${w} or w) words ++ extra);

  # The node's command line: this instance's binary, config file and sandbox socket, then
  # `extraArgs`; everything else as shipped.
  nodeExecStart =
    name: inst: configPath:
    shippedExecStart ../systemd/paratime-node.service
      {
        "/usr/bin/paratime-node" = lib.getExe inst.package;
        "/etc/paratime-node/config.yml" = configPath;
        "/run/paratime-node-sandbox/sandbox.sock" = (namesOf name).sandboxSocket;
      }
      inst.extraArgs;

  # The sandbox launcher's command line: this instance's binary and bundles directory, the
  # top-level package's bubblewrap (the one the AppArmor profiles name).
  sandboxExecStart =
    inst:
    shippedExecStart ../systemd/paratime-node-sandbox.service
      {
        "/usr/bin/paratime-node" = lib.getExe inst.package;
        "${defaultDataDir}/runtimes/bundles" = "${inst.settings.common.data_dir}/runtimes/bundles";
        "/usr/bin/bwrap" = lib.getExe cfg.package.bubblewrap;
      }
      [ ];

  instanceUnits =
    name: inst:
    let
      n = namesOf name;
      dataDir = inst.settings.common.data_dir;
      customDataDir = dataDir != "${n.stateDir}/data";
      configPath = configFileOf name inst;
    in
    {
      "${n.node}" = {
        overrideStrategy = "asDropin";
        wantedBy = [ "multi-user.target" ];
        serviceConfig = {
          ExecStart = [
            ""
            (nodeExecStart name inst configPath)
          ];
        }
        // lib.optionalAttrs customDataDir { ReadWritePaths = [ dataDir ]; };
      };
      "${n.sandbox}" = {
        overrideStrategy = "asDropin";
        serviceConfig =
          lib.optionalAttrs (customDataDir || inst.package != cfg.package)
            {
              ExecStart = [
                ""
                (sandboxExecStart inst)
              ];
            }
          // lib.optionalAttrs customDataDir {
            TemporaryFileSystem = [ "${dataDir}:ro" ];
            BindReadOnlyPaths = [
              ""
              "${dataDir}/runtimes/bundles"
            ];
          };
      };
    };

  # The lines of systemd/tmpfiles.d under /var/lib/paratime-node, for one instance: the data
  # dir's lines moved to its data dir, the rest to its state dir. Other lines (/etc/paratime-node)
  # do not apply: the config lives in the store. The state and data dirs themselves are added
  # when missing, so that tmpfiles never creates them root-owned as parents of a deeper line.
  tmpfilesOf =
    name: inst:
    let
      n = namesOf name;
      dataDir = inst.settings.common.data_dir;
      move =
        p:
        if p == defaultDataDir || lib.hasPrefix "${defaultDataDir}/" p then
          dataDir + lib.removePrefix defaultDataDir p
        else if p == defaultStateDir || lib.hasPrefix "${defaultStateDir}/" p then
          n.stateDir + lib.removePrefix defaultStateDir p
        else
          null;
      lines = lib.filter (l: l != "" && !(lib.hasPrefix "#" l)) (map lib.trim (lib.splitString "\n" shippedTmpfiles));
      moved = lib.concatMap
        (
          l:
          let
            fields = lib.filter (f: f != "") (lib.splitString " " (lib.replaceStrings [ "\t" ] [ " " ] l));
            p = if lib.length fields > 1 then move (lib.elemAt fields 1) else null;
          in
          lib.optional (p != null) {
            path = p;
            line = lib.concatStringsSep " " ([ (lib.head fields) p ] ++ lib.drop 2 fields);
          }
        )
        lines;
      has = p: lib.any (m: m.path == p) moved;
      ensure = p: lib.optional (!has p) "d ${p} 0700 paratime paratime -";
    in
    ensure n.stateDir ++ lib.optionals (dataDir != n.stateDir) (ensure dataDir ++ ensure "${dataDir}/runtimes") ++ map (m: m.line) moved;

  validName = name: builtins.match "[A-Za-z0-9][A-Za-z0-9_-]*" name != null;
  validDataDir = d: builtins.match "(/[A-Za-z0-9_.+-]+)+" d != null && builtins.match ".*/\\.\\.?(/.*)?" d == null;

  p2pPorts = lib.mapAttrsToList (_: inst: inst.settings.p2p.port) enabled;

  # The port of `metrics.address` (IP:PORT, [IPv6]:PORT or :PORT), or null.
  metricsPortOf =
    address:
    let
      m = builtins.match "(.*):([0-9]+)" address;
    in
    if m == null then null else lib.toInt (lib.elemAt m 1);
  metricsAddresses = lib.concatLists (lib.mapAttrsToList (_: inst: lib.optional inst.metrics.enable inst.metrics.address) enabled);
in
{
  meta.maintainers = import ./maintainers.nix;

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
                  where = whereOf name;
                  dataDir = inst.settings.common.data_dir;
                  undeclarable = lib.filter (k: !(lib.elem k declarableWithConfigFile)) inst.settingsDeclared;
                in
                [
                  {
                    assertion = !inst.metrics.enable || metricsPortOf inst.metrics.address != null;
                    message = "${where}: metrics.address = \"${inst.metrics.address}\" has no port; write it as IP:PORT, e.g. 127.0.0.1:3000.";
                  }
                  {
                    assertion = inst.metrics.enable || !inst.metrics.openFirewall;
                    message = "${where}: metrics.openFirewall is set but metrics.enable is not: nothing would listen on the port.";
                  }
                  {
                    assertion = inst.configFile == null || !inst.metrics.enable;
                    message = "${where}: metrics.enable writes into the generated config.yml, but configFile replaces it: set metrics.mode and metrics.address in that file.";
                  }
                  {
                    assertion = inst.configFile == null || undeclarable == [ ];
                    message = "${where}: set either `configFile` or `settings`, not both (with `configFile`, `settings` may only state `common.data_dir` and `p2p.port`; found ${lib.concatMapStringsSep ", " (lib.concatStringsSep ".") undeclarable}).";
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
                  {
                    assertion = inst.configFile != null || portOf inst.settings.consensus.listen_address != null;
                    message = "${where}: settings.consensus.listen_address = \"${inst.settings.consensus.listen_address}\" has no port; write it as tcp://IP:PORT, e.g. tcp://0.0.0.0:26656.";
                  }
                  {
                    assertion = validDataDir dataDir;
                    message = "${where}: settings.common.data_dir = \"${dataDir}\" must be an absolute path of letters, digits and _.+- without . or .. parts or a trailing /.";
                  }
                  {
                    assertion = name == "" || (validName name && name != "sandbox" && !(lib.hasPrefix "sandbox-" name));
                    message = "${where}: the instance name must be letters, digits, _ and - (starting with a letter or digit), and neither `sandbox` nor `sandbox-*`: paratime-node@NAME uses /run/paratime-node-NAME and /var/lib/paratime-node-NAME, which the sandbox launcher's /run/paratime-node-sandbox[-NAME] would collide with.";
                  }
                  {
                    assertion = !config.security.apparmor.enable || inst.package == cfg.package;
                    message = "${where}: with security.apparmor.enable, every instance must use the top-level `services.paratime-node.package` (the AppArmor profiles name its binary and bubblewrap).";
                  }
                ]
            )
            enabled
        )
      ++ [
        {
          assertion = lib.allUnique p2pPorts;
          message = "services.paratime-node: two instances use the same settings.p2p.port: ${toString p2pPorts}.";
        }
        {
          assertion = lib.allUnique (lib.mapAttrsToList (_: inst: inst.settings.common.data_dir) enabled);
          message = "services.paratime-node: two instances share a data directory (settings.common.data_dir).";
        }
        {
          assertion = lib.allUnique metricsAddresses;
          message = "services.paratime-node: two instances serve metrics on the same address (metrics.address): ${toString metricsAddresses}.";
        }
        {
          assertion = (config.boot.kernel.sysctl."user.max_user_namespaces" or 1) != 0;
          message = "services.paratime-node: the sandbox needs user namespaces, but boot.kernel.sysctl.\"user.max_user_namespaces\" is 0.";
        }
        {
          assertion = config.security.allowUserNamespaces;
          message = "services.paratime-node: the sandbox needs user namespaces; set security.allowUserNamespaces = true.";
        }
      ];

    warnings = lib.concatLists (
      lib.mapAttrsToList
        (
          name: inst:
            let
              where = whereOf name;
            in
            if inst.configFile != null then
              lib.optional (!(inStore inst.configFile))
                "${where}: configFile = ${render inst.configFile} is not in the Nix store: it is not checked at build time, and the module assumes it says common.data_dir = ${inst.settings.common.data_dir} and p2p.port = ${toString inst.settings.p2p.port}."
            else
              lib.optionals inst.checkConfig (
                map (f: "${where}: ${message f.key f.value}. A path literal (./file) is copied into the store and checked.") (unseenFilesOf inst)
              )
        )
        enabled
    );

    # One package ships the units (and the instance templates): the top-level one.
    systemd.packages = [ cfg.package ];
    systemd.services = lib.mkMerge (lib.mapAttrsToList instanceUnits enabled);
    systemd.sockets = lib.mkMerge (
      lib.mapAttrsToList
        (name: _: {
          "${(namesOf name).node}" = {
            overrideStrategy = "asDropin";
            wantedBy = [ "sockets.target" ];
          };
          "${(namesOf name).sandbox}" = {
            overrideStrategy = "asDropin";
            wantedBy = [ "sockets.target" ];
          };
        })
        enabled
    );
    systemd.tmpfiles.rules = lib.unique (lib.concatLists (lib.mapAttrsToList tmpfilesOf enabled));

    # As systemd/sysusers.d: the node's user, and the sandbox launcher's (shared by every
    # instance); exploded bundles reach the launcher through its group.
    users.users.paratime = {
      isSystemUser = true;
      group = "paratime";
      description = "paratime-node";
    };
    users.groups.paratime = { };
    users.users.paratime-sandbox = {
      isSystemUser = true;
      group = "paratime-sandbox";
      description = "paratime-node sandbox launcher";
    };
    users.groups.paratime-sandbox = { };

    environment.systemPackages = [ cfg.package ];

    networking.firewall = lib.mkMerge (
      lib.mapAttrsToList
        (
          _: inst:
            lib.mkMerge [
              (mkIf inst.openFirewall {
                allowedTCPPorts = [ inst.settings.p2p.port ]
                  ++ lib.optional (portOf inst.settings.consensus.listen_address != null)
                  (portOf inst.settings.consensus.listen_address);
                allowedUDPPorts = [ inst.settings.p2p.port ];
              })
              (mkIf (inst.metrics.enable && inst.metrics.openFirewall && metricsPortOf inst.metrics.address != null) {
                allowedTCPPorts = [ (metricsPortOf inst.metrics.address) ];
              })
            ]
        )
        enabled
    );

    # One set of profiles, from the top-level package (they cover every instance's paths).
    security.apparmor.policies = mkIf config.security.apparmor.enable {
      bwrap.profile = ''include "${cfg.package}/etc/apparmor.d/bwrap"'';
      paratime-node.profile = ''include "${cfg.package}/etc/apparmor.d/paratime-node"'';
      paratime-sandbox.profile = ''include "${cfg.package}/etc/apparmor.d/paratime-sandbox"'';
    };
  };
}

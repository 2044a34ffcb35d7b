#!/usr/bin/env bash
# Open MPI's run-time parts for the GPU bundle (called by package_gpu_check.sh): the lent GPU
# machine has no Open MPI, and MPI_Init needs more than libmpi: its plugins (mca_*.so, loaded
# at run time), PMIx's plugins, its help texts, and for several ranks mpirun and orted.
# Debian's Open MPI 4.1 is not installed under one prefix, so the parts go to DEST as
#   bin/mpirun bin/orted   lib/openmpi3/ (plugins)   lib/pmix/   share/openmpi/   etc/
# and DEST/env.sh points Open MPI at them by its own variables (no relocation of binaries).
# Left out: plugins for fabrics a single machine does not have (UCX, libfabric, PSM,
# InfiniBand verbs) and Java; Open MPI skips what it does not find.
# The shared libraries all of these need are added to the bundle by the caller's ldd pass.
# Usage: bash scripts/package_gpu_mpi.sh DEST
set -euo pipefail
DEST=${1:?usage: package_gpu_mpi.sh DEST}
MPI_LIB=$(dirname "$(readlink -f "$(ldconfig -p | awk '/libmpi.so.40 / {print $NF; exit}')")")
PLUGINS=/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3
PMIX_PLUGINS=/usr/lib/x86_64-linux-gnu/pmix2/lib/pmix
[[ -d $PLUGINS && -x /usr/bin/orterun && -x /usr/bin/orted ]] ||
  { echo "package_gpu_mpi: Debian's Open MPI 4.1 not found (openmpi-bin, libopenmpi3)" >&2; exit 1; }

rm -rf "$DEST"
mkdir -p "$DEST/bin" "$DEST/lib/openmpi3" "$DEST/lib/pmix" "$DEST/share" "$DEST/etc"
install -m 755 /usr/bin/orterun "$DEST/bin/mpirun"
install -m 755 /usr/bin/orted "$DEST/bin/orted"
for p in "$PLUGINS"/*.so; do
  case $(basename "$p") in
    *ucx* | *ofi* | *psm* | *openib* | *verbs* | *java* | mca_pml_cm.so | mca_coll_hcoll.so) continue ;;
  esac
  cp -L "$p" "$DEST/lib/openmpi3/"
done
[[ -d $PMIX_PLUGINS ]] && cp -L "$PMIX_PLUGINS"/*.so "$DEST/lib/pmix/" 2>/dev/null || true
cp -r /usr/share/openmpi "$DEST/share/"
cp /etc/openmpi/openmpi-mca-params.conf "$DEST/etc/" 2>/dev/null || : >"$DEST/etc/openmpi-mca-params.conf"
strip --strip-unneeded "$DEST"/bin/* "$DEST"/lib/*/*.so 2>/dev/null || true

# Sourced on the GPU machine with the bundle's LD_LIBRARY_PATH already set.
cat >"$DEST/env.sh" <<'EOF'
# Open MPI from the GPU bundle (scripts/package_gpu_mpi.sh): its plugins, help texts and
# configuration by Open MPI's and PMIx's own variables; mpirun first on PATH.
_mpi_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export OPAL_PREFIX=$_mpi_dir
export OPAL_BINDIR=$_mpi_dir/bin
export OPAL_PKGDATADIR=$_mpi_dir/share/openmpi
export OPAL_SYSCONFDIR=$_mpi_dir/etc
export OMPI_MCA_mca_base_component_path=$_mpi_dir/lib/openmpi3
export PMIX_MCA_mca_base_component_path=$_mpi_dir/lib/pmix
export OMPI_MCA_orte_launch_agent=$_mpi_dir/bin/orted
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# The GPU machine has a PMIx of its own whose plugins PMIx finds first; the zlib one does not
# load with ours (harmless) and PMIx then warns on every start.
export PMIX_MCA_pcompress_base_silence_warning=1
export PATH=$_mpi_dir/bin:$PATH
unset _mpi_dir
EOF
echo "package_gpu_mpi: Open MPI from $MPI_LIB, $(ls "$DEST/lib/openmpi3" | wc -l) plugins, $(du -sh "$DEST" | cut -f1)"

# Shared by the scripts: Open MPI as root on a small machine (see README "Running with mpirun").
# Both ALLOW variables are needed as root; oversubscribe lets tests run 4 ranks on 2 cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

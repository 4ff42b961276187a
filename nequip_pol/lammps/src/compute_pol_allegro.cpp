/* ----------------------------------------------------------------------
   nequip_pol: compute pol/allegro
------------------------------------------------------------------------- */

#include "compute_pol_allegro.h"

#include "pair_pol_base.h"

#include "error.h"
#include "force.h"
#include "update.h"

#include <cstring>
#include <mpi.h>

using namespace LAMMPS_NS;

PairPolBase *LAMMPS_NS::pol_find_pair(LAMMPS *lmp, const char *what)
{
  PairPolBase *p = nullptr;
  if (lmp->force->pair) p = dynamic_cast<PairPolBase *>(lmp->force->pair);
  if (!p) {
    Pair *m = lmp->force->pair_match("allegro/pol", 1);
    if (!m) m = lmp->force->pair_match("nequip/pol", 1);
    if (m) p = dynamic_cast<PairPolBase *>(m);
  }
  if (!p) lmp->error->all(FLERR, "{} requires pair_style allegro/pol or nequip/pol", what);
  return p;
}

ComputePolAllegro::ComputePolAllegro(LAMMPS *lmp, int narg, char **arg) : Compute(lmp, narg, arg)
{
  if (narg != 3) error->all(FLERR, "Illegal compute pol/allegro command: compute ID group pol/allegro");
  vector_flag = 1;
  size_vector = 12;
  extvector = 1;
  vector = new double[12];
  for (int k = 0; k < 12; k++) vector[k] = 0.0;
}

ComputePolAllegro::~ComputePolAllegro()
{
  delete[] vector;
}

void ComputePolAllegro::init()
{
  pair = pol_find_pair(lmp, "compute pol/allegro");
  if (!pair->has_pol)
    error->all(FLERR, "compute pol/allegro: the model has no polarization output");
}

void ComputePolAllegro::compute_vector()
{
  invoked_vector = update->ntimestep;
  if (pair->last_step < 0)
    error->all(FLERR, "compute pol/allegro: the pair style has not been evaluated yet");
  double local[12], all[12];
  for (int k = 0; k < 3; k++) local[k] = pair->pol_local[k];
  for (int k = 0; k < 9; k++) local[3 + k] = pair->has_alpha ? pair->alpha_local[k] : 0.0;
  MPI_Allreduce(local, all, 12, MPI_DOUBLE, MPI_SUM, world);
  for (int k = 0; k < 12; k++) vector[k] = all[k];
}

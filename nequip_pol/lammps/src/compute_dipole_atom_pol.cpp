/* ----------------------------------------------------------------------
   nequip_pol: compute dipole/atom/pol
------------------------------------------------------------------------- */

#include "compute_dipole_atom_pol.h"

#include "compute_pol_allegro.h"
#include "pair_pol_base.h"

#include "atom.h"
#include "error.h"
#include "memory.h"
#include "update.h"

using namespace LAMMPS_NS;

ComputeDipoleAtomPol::ComputeDipoleAtomPol(LAMMPS *lmp, int narg, char **arg) :
    Compute(lmp, narg, arg)
{
  if (narg != 3)
    error->all(FLERR, "Illegal compute dipole/atom/pol command: compute ID group dipole/atom/pol");
  peratom_flag = 1;
  size_peratom_cols = 3;
}

ComputeDipoleAtomPol::~ComputeDipoleAtomPol()
{
  memory->destroy(values);
}

void ComputeDipoleAtomPol::init()
{
  pair = pol_find_pair(lmp, "compute dipole/atom/pol");
  if (!pair->has_dipoles)
    error->all(FLERR,
               "compute dipole/atom/pol: the model has no atomic_dipoles output (compile it with "
               "a nequip_pol_pair_* target)");
}

void ComputeDipoleAtomPol::compute_peratom()
{
  invoked_peratom = update->ntimestep;
  if (pair->last_step < 0)
    error->all(FLERR, "compute dipole/atom/pol: the pair style has not been evaluated yet");
  if (atom->nmax > nmax) {
    memory->destroy(values);
    nmax = atom->nmax;
    memory->create(values, nmax, 3, "dipole/atom/pol:values");
    array_atom = values;
  }
  // every variant of the model (with or without Z*) outputs p_i: the values of the last force
  // call, local atoms only (p_i has no ghost contributions, see PairPolBase::compute)
  const int nlocal = atom->nlocal;
  const int *mask = atom->mask;
  for (int i = 0; i < nlocal; i++) {
    const bool in = (mask[i] & groupbit) != 0;
    for (int k = 0; k < 3; k++) values[i][k] = in ? pair->dipole[i][k] : 0.0;
  }
}

double ComputeDipoleAtomPol::memory_usage()
{
  return (double) nmax * 3 * sizeof(double);
}

/* ----------------------------------------------------------------------
   nequip_pol: compute born/atom
------------------------------------------------------------------------- */

#include "compute_born_atom.h"

#include "compute_pol_allegro.h"
#include "pair_pol_base.h"

#include "atom.h"
#include "error.h"
#include "memory.h"
#include "update.h"
#include "utils.h"

#include <cstring>

using namespace LAMMPS_NS;

ComputeBornAtom::ComputeBornAtom(LAMMPS *lmp, int narg, char **arg) : Compute(lmp, narg, arg)
{
  int iarg = 3;
  while (iarg < narg) {
    if (strcmp(arg[iarg], "dipole") == 0 && iarg + 1 < narg) {
      with_dipole = utils::logical(FLERR, arg[iarg + 1], false, lmp);
      iarg += 2;
    } else
      error->all(FLERR, "Illegal compute born/atom command: compute ID group born/atom [dipole yes/no]");
  }
  peratom_flag = 1;
  timeflag = 1;    // keep the list of steps it is invoked on: the pair style asks matchstep()
  size_peratom_cols = with_dipole ? 12 : 9;
}

ComputeBornAtom::~ComputeBornAtom()
{
  memory->destroy(values);
}

void ComputeBornAtom::init()
{
  pair = pol_find_pair(lmp, "compute born/atom");
  if (!pair->has_born)
    error->all(FLERR, "compute born/atom: the model has no born_effective_charges output");
  if (with_dipole && !pair->has_dipoles)
    error->all(FLERR, "compute born/atom: the model has no atomic_dipoles output");
}

void ComputeBornAtom::compute_peratom()
{
  invoked_peratom = update->ntimestep;
  if (pair->last_step < 0)
    error->all(FLERR, "compute born/atom: the pair style has not been evaluated yet");
  pair->ensure_born("compute born/atom");
  if (atom->nmax > nmax) {
    memory->destroy(values);
    nmax = atom->nmax;
    memory->create(values, nmax, size_peratom_cols, "born/atom:values");
    array_atom = values;
  }
  int nlocal = atom->nlocal;
  int *mask = atom->mask;
  for (int i = 0; i < nlocal; i++) {
    bool in = (mask[i] & groupbit) != 0;
    for (int k = 0; k < 9; k++) values[i][k] = in ? pair->born[i][k] : 0.0;
    if (with_dipole)
      for (int k = 0; k < 3; k++) values[i][9 + k] = in ? pair->dipole[i][k] : 0.0;
  }
}

double ComputeBornAtom::memory_usage()
{
  return (double) nmax * size_peratom_cols * sizeof(double);
}

